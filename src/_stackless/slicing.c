/* Stack slicing; see slicing.h. */
#include "slicing.h"

#include <stdlib.h>
#include <string.h>

/* Grow (or shrink a much too large) copy buffer to hold `size` bytes. A context usually
   suspends at the same depth every time, so the exact size (in 16-byte steps) is kept. */
static int
resize(SlStack *s, size_t size)
{
    size_t want = (size + 15) & ~(size_t)15;
    char *p = realloc(s->copy, want);
    if (p == NULL) {
        return -1;
    }
    s->copy = p;
    s->capacity = want;
    return 0;
}

/* The copies read and write other contexts' frames, redzones included, which
   AddressSanitizer would report as stack overflows: under ASan they are a plain loop in an
   uninstrumented function instead of the (intercepted) memcpy. */
#if defined(__SANITIZE_ADDRESS__)
#define SL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SL_ASAN 1
#endif
#endif

#ifdef SL_ASAN
#include <sanitizer/asan_interface.h>

__attribute__((no_sanitize_address, noinline)) static void
copy_bytes(char *dst, const char *src, size_t n)
{
    volatile char *d = dst;
    while (n--) {
        *d++ = *src++;
    }
}

/* The shadow of a suspended context's stack describes frames that never return (so their
   redzones stay poisoned) while other contexts run over those bytes, and after a restore
   it describes the frames of whoever ran there meanwhile: forget it both times. */
#define SL_FORGET_SHADOW(p, n) __asan_unpoison_memory_region((p), (n))
#else
static inline void
copy_bytes(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
}
#define SL_FORGET_SHADOW(p, n) ((void)0)
#endif

int
sl_stack_save(SlStack *s, char *sp, char *base)
{
    size_t size = sp < base ? (size_t)(base - sp) : 0;
    if (size > s->capacity) {
        if (resize(s, size) < 0) {
            return -1;
        }
    }
    else if (s->capacity > 4096 && size < s->capacity / 4) {
        /* give back most of a buffer once needed for a deep stack (keeping it on failure) */
        if (size == 0) {
            free(s->copy);
            s->copy = NULL;
            s->capacity = 0;
        }
        else {
            (void)resize(s, size);
        }
    }
    s->sp = sp;
    s->size = size;
    if (size) {
        copy_bytes(s->copy, sp, size);
        SL_FORGET_SHADOW(sp, size); /* the next context will run over these frames */
    }
    return 0;
}

void
sl_stack_abandon(SlStack *s, char *sp, char *base)
{
    s->sp = NULL;
    s->size = 0;
    if (sp < base) {
        SL_FORGET_SHADOW(sp, (size_t)(base - sp));
    }
}

void
sl_stack_restore(SlStack *s)
{
    if (s->size) {
        copy_bytes(s->sp, s->copy, s->size);
        SL_FORGET_SHADOW(s->sp, s->size);
    }
    /* The context runs again: its bytes live on the real stack now, and a stale sp would
       make it look suspended. The buffer stays for the next save. */
    s->sp = NULL;
    s->size = 0;
}

void
sl_stack_release(SlStack *s)
{
    free(s->copy);
    s->copy = NULL;
    s->sp = NULL;
    s->size = 0;
    s->capacity = 0;
}
