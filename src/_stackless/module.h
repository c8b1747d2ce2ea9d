/* Module-wide state shared by the object files: types, exceptions, callbacks, settings.
 *
 * Owns nothing but declarations; module.c fills it in when the module is executed. One
 * interpreter per process may load the module (tasklet switching is per OS thread and
 * cannot be shared safely between interpreters).
 */
#ifndef SL_MODULE_H
#define SL_MODULE_H

#include <Python.h>

typedef struct SlModuleState {
    PyTypeObject *tasklet_type;
    PyTypeObject *channel_type;
    PyTypeObject *atomic_type;
    PyTypeObject *bomb_type;
    PyObject *TaskletExit;
    PyObject *channel_callback; /* callable or NULL */
    PyObject *schedule_callback;
    PyObject *error_handler;
    unsigned long main_thread_id; /* the process's main thread */
    int softswitch;
    int pickle_flags_default;
} SlModuleState;

/* The state of the loaded module, or NULL before it is executed. */
extern SlModuleState *sl_module;

/* bomb.c: an exception in transit between tasklets. */
extern PyType_Spec sl_bomb_spec;
int sl_bomb_check(PyObject *o);
/* New bomb carrying exception `exc` (class, instance or bomb triple), value, traceback.
   No validation: callers validate. */
PyObject *sl_bomb_new(PyObject *type, PyObject *value, PyObject *traceback);
/* New bomb carrying the exception currently raised (which is cleared); NULL on failure. */
PyObject *sl_bomb_from_error(void);
/* Raise the carried exception. Always returns NULL. */
PyObject *sl_bomb_explode(PyObject *bomb);
/* Whether the carried exception is TaskletExit or a subclass. */
int sl_bomb_is_taskletexit(PyObject *bomb);
/* The bomb of raise_exception(cls, *args) / send_exception(cls, *args): cls(*args) raised
   where it lands. `method` names the caller in the errors ("tasklet.raise_exception").
   NULL with TypeError on bad arguments. */
PyObject *sl_bomb_from_class_args(const char *method, PyObject *const *args, Py_ssize_t nargs);
/* Validate raise-style arguments (class or instance, value, traceback) and make a bomb;
   NULL with TypeError on bad arguments. */
PyObject *sl_bomb_from_raise_args(PyObject *exc, PyObject *value, PyObject *tb);

/* module.c: a flag given as a bool or integer: 0 or 1, or -1 with an exception set
   (TypeError with `message` for anything but an int). */
int sl_int_flag(PyObject *v, const char *message);

/* module.c: parse the arguments of a METH_FASTCALL | METH_KEYWORDS function. names is a
   NULL-terminated list; out[i] receives a borrowed reference or stays NULL when absent;
   the first `required` names must be given. Returns 0, or -1 with TypeError set. */
int sl_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, int required, PyObject **out);

/* atomic.c */
extern PyType_Spec sl_atomic_spec;

#endif /* SL_MODULE_H */
