/* Stack slicing: keeping a suspended context's part of the C stack on the heap.
 *
 * Owns: the heap copy of the stack bytes [sp, base) of one suspended context, and moving
 * those bytes between the heap and the thread's stack. It does not decide when to switch,
 * which context runs, or where a thread's base is (the scheduler does); it never touches
 * Python objects.
 *
 * Every tasklet of a thread runs in the same address range just below the thread's stack
 * base, so at any moment only the running context's bytes are live on the real stack; every
 * suspended context keeps an exact copy of its used part on the heap and gets it back at
 * the same addresses before it resumes. A blocked tasklet costs exactly the bytes its C
 * frames use (about 0.8 KiB when it blocked in a channel call made from Python), with no
 * memory mapping of its own.
 */
#ifndef SL_SLICING_H
#define SL_SLICING_H

#include <stddef.h>

typedef struct SlStack {
    char *sp;        /* stack pointer of the suspended context; NULL if it has none */
    char *copy;      /* heap copy of [sp, sp + size) */
    size_t size;     /* bytes held in copy */
    size_t capacity; /* bytes allocated for copy */
} SlStack;

/* Record sp and copy [sp, base) to the heap. Runs inside the switch: may only use malloc.
   Returns 0, or -1 if the copy could not be allocated. */
int sl_stack_save(SlStack *s, char *sp, char *base);

/* The context whose stack is [sp, base) ends and will never run again: nothing to keep. */
void sl_stack_abandon(SlStack *s, char *sp, char *base);

/* Copy the saved bytes back to [sp, sp + size) and forget sp: the context is running.
   The caller's frame must lie below sp. */
void sl_stack_restore(SlStack *s);

/* Forget the saved bytes and the stack pointer; keeps nothing allocated. */
void sl_stack_release(SlStack *s);

#endif /* SL_SLICING_H */
