/* The I/O poller: tasklets blocked on file descriptors; see poller.c. */
#ifndef SL_POLLER_H
#define SL_POLLER_H

#include <Python.h>

/* Add the poller type to the module (at module execution; Linux only, elsewhere the module
   has no poller and stacklesslib says so). */
int sl_poller_init(PyObject *module);

#endif /* SL_POLLER_H */
