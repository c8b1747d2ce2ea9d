/* Started tasklets as pickle data; see pickling.c. */
#ifndef SL_PICKLING_H
#define SL_PICKLING_H

#include <Python.h>

#include "pystate.h"

/* Create the restored-frames type (at module execution). */
int sl_pickling_init(PyObject *module);

/* The frames part of a suspended tasklet's pickled state (a new tuple), or NULL. start:
   the callable the tasklet was started with. */
PyObject *sl_frames_reduce(SlPyState *st, PyObject *start);

/* Whether a pickled frames value describes a started tasklet (else it is the call of one
   that never ran). */
int sl_frames_are_started(PyObject *frames);

/* Validate pickled frames and rebuild them: a new restored-frames object, which a tasklet
   runs in place of its function; NULL with ValueError if they do not fit their code. */
PyObject *sl_frames_restore(PyObject *frames);

/* Whether o is a restored-frames object. */
int sl_restored_check(PyObject *o);

/* The pickled frames a restored-frames object was made from (new reference). */
PyObject *sl_restored_frames(PyObject *o);

/* Resume the frames, innermost first, the innermost receiving value (NULL: None; a bomb:
   its exception) as the result of the call it waited in. Returns what the outermost frame
   returns, or NULL with the exception that escaped it. Runs once. */
PyObject *sl_restored_run(PyObject *o, PyObject *value);

#endif /* SL_PICKLING_H */
