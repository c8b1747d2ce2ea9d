/* The machine-level context switch: the only entry point into the per-ABI assembly.
 *
 * Owns: saving and restoring the callee-saved registers of the C ABI and moving the stack
 * pointer. Knows nothing about tasklets, Python or what lives on the stack; the two hooks
 * decide where the stack pointer goes and copy stack bytes around.
 *
 * sl_switch() pushes every callee-saved register (and the FP control words) onto the
 * current stack, then calls
 *     new_sp = save(ctx, sp)      on the current stack, sp = stack pointer after the pushes;
 * loads new_sp into the stack pointer and calls
 *     result = restore(ctx, new_sp)   on the new stack, just below new_sp;
 * then pops the registers found at new_sp and returns `result` to whoever had pushed them.
 *
 * new_sp must be 16-byte aligned and either a value that save() received earlier (resume a
 * suspended context) or a fresh address below which restore() may build frames (start a new
 * context; restore() must then never return). Neither hook may rely on its caller's locals
 * after the stack pointer moved: all state travels through ctx.
 */
#ifndef SL_SWITCH_H
#define SL_SWITCH_H

typedef void *(*sl_switch_hook)(void *ctx, void *sp);

void *sl_switch(void *ctx, sl_switch_hook save, sl_switch_hook restore);

/* Bytes below a context's saved stack pointer that sl_switch() itself occupies. The saved
 * register block lives at [sp, sp + SL_SWITCH_FRAME_SIZE). */
#if defined(__x86_64__)
#define SL_SWITCH_FRAME_SIZE 56
#elif defined(__aarch64__)
#define SL_SWITCH_FRAME_SIZE 160
#else
#error "stackless: no stack switch for this CPU (supported: x86-64 System V, AArch64)"
#endif

#endif /* SL_SWITCH_H */
