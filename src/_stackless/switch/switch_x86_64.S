/* x86-64 System V stack switch; see switch.h for the contract.
 *
 * Callee-saved state of the SysV ABI: rbx, rbp, r12-r15, rsp, the control bits of MXCSR and
 * the x87 control word. All xmm registers are caller-saved. Layout at the saved sp:
 *   [sp+0]  MXCSR (4 bytes), x87 control word (2 bytes), padding
 *   [sp+8]  r15, r14, r13, r12, rbx, rbp, then the return address at [sp+56]
 * At entry rsp = 8 (mod 16); after six pushes and the 8-byte slot it is 0 (mod 16), which is
 * what every saved sp (and every fresh stack top handed in by the save hook) must be.
 */
#if defined(__x86_64__)
        .text
        .p2align 4
        .globl  sl_switch
        .hidden sl_switch
        .type   sl_switch, @function
sl_switch:
        .cfi_startproc
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset %rbp, -16
        pushq   %rbx
        .cfi_def_cfa_offset 24
        .cfi_offset %rbx, -24
        pushq   %r12
        .cfi_def_cfa_offset 32
        .cfi_offset %r12, -32
        pushq   %r13
        .cfi_def_cfa_offset 40
        .cfi_offset %r13, -40
        pushq   %r14
        .cfi_def_cfa_offset 48
        .cfi_offset %r14, -48
        pushq   %r15
        .cfi_def_cfa_offset 56
        .cfi_offset %r15, -56
        subq    $8, %rsp
        .cfi_def_cfa_offset 64
        stmxcsr (%rsp)
        fnstcw  4(%rsp)

        movq    %rdi, %r13              /* ctx survives the save call in a callee-saved reg */
        movq    %rdx, %r12              /* restore hook, likewise */
        movq    %rsi, %rax
        movq    %rsp, %rsi              /* save(ctx, sp) -> new sp */
        call    *%rax

        movq    %rax, %rsp              /* now on the target stack */
        movq    %r13, %rdi
        movq    %rsp, %rsi              /* restore(ctx, new sp) -> result */
        call    *%r12

        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_def_cfa_offset 56
        popq    %r15
        .cfi_def_cfa_offset 48
        popq    %r14
        .cfi_def_cfa_offset 40
        popq    %r13
        .cfi_def_cfa_offset 32
        popq    %r12
        .cfi_def_cfa_offset 24
        popq    %rbx
        .cfi_def_cfa_offset 16
        popq    %rbp
        .cfi_def_cfa_offset 8
        ret
        .cfi_endproc
        .size   sl_switch, .-sl_switch
#endif
        .section .note.GNU-stack,"",@progbits
