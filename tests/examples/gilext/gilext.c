/* A one-function extension module that does not declare Py_mod_gil: importing it
   re-enables the GIL on a free-threaded build (tests/test_gil_live.py builds it). */
#include <Python.h>

static PyObject *answer(PyObject *self, PyObject *unused) { return PyLong_FromLong(42); }

static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};

static struct PyModuleDef gilext = {PyModuleDef_HEAD_INIT, "gilext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_gilext(void) { return PyModule_Create(&gilext); }
