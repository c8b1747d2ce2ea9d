/* The bomb: an exception travelling from one tasklet to another.
 *
 * Owns: the _stackless.bomb type, making bombs from raise-style arguments or from the
 * raised exception, and raising the carried exception in the tasklet that resumes with it.
 * A bomb sits in a tasklet's tempval (or is handed over by a channel); the scheduler raises
 * it when that tasklet resumes.
 */
#include "module.h"
#include "pystate.h"

#include <string.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *type;
    PyObject *value;
    PyObject *traceback;
} SlBomb;

int
sl_bomb_check(PyObject *o)
{
    return Py_IS_TYPE(o, sl_module->bomb_type);
}

PyObject *
sl_bomb_new(PyObject *type, PyObject *value, PyObject *traceback)
{
    SlBomb *b = PyObject_GC_New(SlBomb, sl_module->bomb_type);
    if (b == NULL) {
        return NULL;
    }
    b->type = Py_XNewRef(type == Py_None ? NULL : type);
    b->value = Py_XNewRef(value == Py_None ? NULL : value);
    b->traceback = Py_XNewRef(traceback == Py_None ? NULL : traceback);
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

PyObject *
sl_bomb_from_error(void)
{
    PyObject *exc = sl_pystate_fetch_error();
    if (exc == NULL) {
        return NULL;
    }
    PyObject *tb = PyException_GetTraceback(exc);
    PyObject *bomb = sl_bomb_new((PyObject *)Py_TYPE(exc), exc, tb);
    Py_XDECREF(tb);
    Py_DECREF(exc);
    return bomb;
}

PyObject *
sl_bomb_explode(PyObject *bomb)
{
    SlBomb *b = (SlBomb *)bomb;
    PyObject *type = b->type, *value = b->value, *tb = b->traceback;
    if (value != NULL && PyExceptionInstance_Check(value) &&
        (type == NULL || PyObject_TypeCheck(value, (PyTypeObject *)type))) {
        /* An instance raised as it is, with its traceback, chained to the handled one. */
        if (tb != NULL) {
            PyException_SetTraceback(value, tb);
        }
        PyErr_SetObject((PyObject *)Py_TYPE(value), value);
        return NULL;
    }
    if (type == NULL || !PyExceptionClass_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "the bomb carries no exception class");
        return NULL;
    }
    /* A class and its arguments: instantiated here, in the tasklet that resumes, as
       CPython would (a tuple is the argument list). Not left to CPython's lazy
       normalisation: 3.11 runs __init__ with the recursion check relaxed there, so a deep
       recursion in it would overflow the C stack. */
    PyObject *exc;
    if (value == NULL || value == Py_None) {
        exc = PyObject_CallNoArgs(type);
    }
    else if (PyTuple_Check(value)) {
        exc = PyObject_Call(type, value, NULL);
    }
    else {
        exc = PyObject_CallOneArg(type, value);
    }
    if (exc == NULL) {
        return NULL;
    }
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError,
                     "calling %R should have returned an instance of BaseException, not %s", type,
                     Py_TYPE(exc)->tp_name);
        Py_DECREF(exc);
        return NULL;
    }
    if (tb != NULL) {
        PyException_SetTraceback(exc, tb);
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

int
sl_bomb_is_taskletexit(PyObject *bomb)
{
    SlBomb *b = (SlBomb *)bomb;
    PyObject *type = b->type;
    if (type == NULL && b->value != NULL) {
        type = (PyObject *)Py_TYPE(b->value);
    }
    return type != NULL && PyExceptionClass_Check(type) &&
           PyObject_IsSubclass(type, sl_module->TaskletExit) == 1;
}

PyObject *
sl_bomb_from_raise_args(PyObject *exc, PyObject *value, PyObject *tb)
{
    if (tb == Py_None) {
        tb = NULL;
    }
    if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionClass_Check(exc)) {
        return sl_bomb_new(exc, value, tb);
    }
    if (PyExceptionInstance_Check(exc)) {
        if (value != NULL && value != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        return sl_bomb_new((PyObject *)Py_TYPE(exc), exc, tb);
    }
    PyErr_Format(PyExc_TypeError, "exceptions must be classes, or instances, not %s",
                 Py_TYPE(exc)->tp_name);
    return NULL;
}

PyObject *
sl_bomb_from_class_args(const char *method, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        const char *name = strchr(method, '.');
        PyErr_Format(PyExc_TypeError, "%s() takes at least 1 argument", name ? name + 1 : method);
        return NULL;
    }
    if (!PyExceptionClass_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s needs Exception or string subclass as first parameter",
                     method);
        return NULL;
    }
    PyObject *rest = PyTuple_New(nargs - 1);
    if (rest == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(rest, i - 1, Py_NewRef(args[i]));
    }
    PyObject *bomb = sl_bomb_new(args[0], rest, NULL);
    Py_DECREF(rest);
    return bomb;
}

/* ---- the Python type ----------------------------------------------------------------- */

static PyObject *
bomb_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"type", "value", "traceback", NULL};
    PyObject *t = NULL, *v = NULL, *tb = NULL;
    if (PyTuple_GET_SIZE(args) == 1 && kwds == NULL && PyTuple_Check(PyTuple_GET_ITEM(args, 0))) {
        args = PyTuple_GET_ITEM(args, 0); /* bomb(sys.exc_info()) */
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:bomb", kwlist, &t, &v, &tb)) {
        return NULL;
    }
    SlBomb *b = (SlBomb *)type->tp_alloc(type, 0);
    if (b == NULL) {
        return NULL;
    }
    b->type = Py_XNewRef(t == Py_None ? NULL : t);
    b->value = Py_XNewRef(v == Py_None ? NULL : v);
    b->traceback = Py_XNewRef(tb == Py_None ? NULL : tb);
    return (PyObject *)b;
}

static int
bomb_traverse(SlBomb *b, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(b));
    Py_VISIT(b->type);
    Py_VISIT(b->value);
    Py_VISIT(b->traceback);
    return 0;
}

static int
bomb_clear(SlBomb *b)
{
    Py_CLEAR(b->type);
    Py_CLEAR(b->value);
    Py_CLEAR(b->traceback);
    return 0;
}

static void
bomb_dealloc(SlBomb *b)
{
    PyTypeObject *tp = Py_TYPE(b);
    PyObject_GC_UnTrack(b);
    bomb_clear(b);
    tp->tp_free(b);
    Py_DECREF(tp);
}

static PyObject *
bomb_get(PyObject *o)
{
    return Py_NewRef(o ? o : Py_None);
}

static PyObject *
bomb_get_type(SlBomb *b, void *c)
{
    return bomb_get(b->type);
}

static PyObject *
bomb_get_value(SlBomb *b, void *c)
{
    return bomb_get(b->value);
}

static PyObject *
bomb_get_traceback(SlBomb *b, void *c)
{
    return bomb_get(b->traceback);
}

static PyObject *
bomb_reduce(SlBomb *b, PyObject *unused)
{
    return Py_BuildValue("O(OOO)", Py_TYPE(b), b->type ? b->type : Py_None,
                         b->value ? b->value : Py_None, b->traceback ? b->traceback : Py_None);
}

static PyGetSetDef bomb_getsets[] = {
    {"type", (getter)bomb_get_type, NULL, "the exception class", NULL},
    {"value", (getter)bomb_get_value, NULL, "the exception instance or its arguments", NULL},
    {"traceback", (getter)bomb_get_traceback, NULL, "the traceback, or None", NULL},
    {NULL},
};

static PyMethodDef bomb_methods[] = {
    {"__reduce__", (PyCFunction)bomb_reduce, METH_NOARGS, NULL},
    {NULL},
};

static PyType_Slot bomb_slots[] = {
    {Py_tp_doc, "bomb(type=None, value=None, traceback=None)\n\n"
                "An exception in transit: a tasklet that resumes with a bomb in its tempval\n"
                "raises the exception it carries."},
    {Py_tp_new, bomb_new},
    {Py_tp_dealloc, bomb_dealloc},
    {Py_tp_traverse, bomb_traverse},
    {Py_tp_clear, bomb_clear},
    {Py_tp_getset, bomb_getsets},
    {Py_tp_methods, bomb_methods},
    {0, NULL},
};

PyType_Spec sl_bomb_spec = {
    .name = "_stackless.bomb",
    .basicsize = sizeof(SlBomb),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = bomb_slots,
};
