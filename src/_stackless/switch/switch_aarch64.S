/* AArch64 (AAPCS64) stack switch; see switch.h for the contract.
 *
 * Callee-saved state: x19-x28, the frame pointer x29, the link register x30, sp and the low
 * 64 bits of v8-v15 (d8-d15). x18 (platform register) is left alone. FPCR is not switched:
 * tasklets share the thread's floating-point modes. Layout at the saved sp (160 bytes, so
 * sp stays 16-byte aligned):
 *   [sp+0] x29, x30   [sp+16] x19, x20 ... [sp+80] x27, x28   [sp+96] d8, d9 ... [sp+144] d14, d15
 */
#if defined(__aarch64__)
        .text
        .p2align 4
        .globl  sl_switch
        .hidden sl_switch
        .type   sl_switch, %function
sl_switch:
        .cfi_startproc
        stp     x29, x30, [sp, #-160]!
        .cfi_def_cfa_offset 160
        .cfi_offset x29, -160
        .cfi_offset x30, -152
        mov     x29, sp
        stp     x19, x20, [sp, #16]
        stp     x21, x22, [sp, #32]
        stp     x23, x24, [sp, #48]
        stp     x25, x26, [sp, #64]
        stp     x27, x28, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]

        mov     x19, x0                 /* ctx survives the save call */
        mov     x20, x2                 /* restore hook, likewise */
        mov     x3, x1
        mov     x1, sp                  /* save(ctx, sp) -> new sp */
        blr     x3

        mov     sp, x0                  /* now on the target stack */
        mov     x0, x19
        mov     x1, sp                  /* restore(ctx, new sp) -> result */
        blr     x20

        ldp     d14, d15, [sp, #144]
        ldp     d12, d13, [sp, #128]
        ldp     d10, d11, [sp, #112]
        ldp     d8,  d9,  [sp, #96]
        ldp     x27, x28, [sp, #80]
        ldp     x25, x26, [sp, #64]
        ldp     x23, x24, [sp, #48]
        ldp     x21, x22, [sp, #32]
        ldp     x19, x20, [sp, #16]
        ldp     x29, x30, [sp], #160
        .cfi_def_cfa_offset 0
        ret
        .cfi_endproc
        .size   sl_switch, .-sl_switch
#endif
        .section .note.GNU-stack,"",%progbits
