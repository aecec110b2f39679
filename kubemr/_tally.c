/* kubemr._tally: the map buffer's count of keys whose values are all one object.

   A word count's mapper emits (word, 1) for every word. The map buffer keeps such pairs as a
   count per key instead of a list of values (kubemr/mapbuffer.py). Tally.add checks that every
   pair of a batch holds that one value object and counts the batch's keys: one dictionary
   lookup per pair and a machine-integer increment, where collections.Counter does two lookups
   and makes a new int object. mapbuffer.py has the same Tally in Python, used when this module
   was not compiled. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *positions; /* dict: key -> its index in counts, in first-seen order */
    Py_ssize_t *counts;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Tally;

static PyObject *
Tally_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Tally() takes no arguments");
        return NULL;
    }
    Tally *self = (Tally *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->positions = PyDict_New();
    if (self->positions == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
Tally_traverse(Tally *self, visitproc visit, void *arg)
{
    Py_VISIT(self->positions);
    return 0;
}

static int
Tally_clear(Tally *self)
{
    Py_CLEAR(self->positions);
    return 0;
}

static void
Tally_dealloc(Tally *self)
{
    PyObject_GC_UnTrack(self);
    Tally_clear(self);
    PyMem_Free(self->counts);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
all_hold(PyObject *batch, PyObject *value)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *pair = PyList_GET_ITEM(batch, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || PyTuple_GET_ITEM(pair, 1) != value)
            return 0;
    }
    return 1;
}

static int
count_new_key(Tally *self, PyObject *key)
{
    if (self->size == self->capacity) {
        Py_ssize_t capacity = self->capacity ? 2 * self->capacity : 1024;
        Py_ssize_t *counts = PyMem_Realloc(self->counts, capacity * sizeof(Py_ssize_t));
        if (counts == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->counts = counts;
        self->capacity = capacity;
    }
    PyObject *position = PyLong_FromSsize_t(self->size);
    if (position == NULL)
        return -1;
    int failed = PyDict_SetItem(self->positions, key, position);
    Py_DECREF(position);
    if (failed)
        return -1;
    self->counts[self->size++] = 1;
    return 0;
}

static int
count_key(Tally *self, PyObject *key)
{
    PyObject *position = PyDict_GetItemWithError(self->positions, key);
    if (position == NULL)
        return PyErr_Occurred() ? -1 : count_new_key(self, key);
    Py_ssize_t index = PyLong_AsSsize_t(position);
    if (index < 0 || index >= self->size) {
        PyErr_SetString(PyExc_RuntimeError, "Tally: a key's position is out of range");
        return -1;
    }
    self->counts[index]++;
    return 0;
}

PyDoc_STRVAR(Tally_add_doc,
"add(batch, value) -> bool\n\n"
"If every item of the list `batch` is a (key, value) tuple holding this very `value` object,\n"
"count its keys and return True; otherwise count nothing and return False.");

static PyObject *
Tally_add(Tally *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "Tally.add(batch: list, value)");
        return NULL;
    }
    PyObject *batch = args[0], *value = args[1];
    if (!all_hold(batch, value))
        Py_RETURN_FALSE;
    /* A key's __hash__ or __eq__ is user code: hold each pair while counting it. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *pair = PyList_GET_ITEM(batch, i);
        Py_INCREF(pair);
        int failed = count_key(self, PyTuple_GET_ITEM(pair, 0));
        Py_DECREF(pair);
        if (failed)
            return NULL;
    }
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(Tally_items_doc,
"items() -> list of (key, count), in the order the keys were first counted");

static PyObject *
Tally_items(Tally *self, PyObject *unused)
{
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *position;
    while (PyDict_Next(self->positions, &pos, &key, &position)) {
        Py_ssize_t index = PyLong_AsSsize_t(position);
        PyObject *item = Py_BuildValue("(On)", key, self->counts[index]);
        if (item == NULL || PyList_Append(items, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(items);
            return NULL;
        }
        Py_DECREF(item);
    }
    return items;
}

static Py_ssize_t
Tally_len(Tally *self)
{
    return self->size;
}

static PyMethodDef Tally_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Tally_add, METH_FASTCALL, Tally_add_doc},
    {"items", (PyCFunction)Tally_items, METH_NOARGS, Tally_items_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Tally_as_sequence = {
    .sq_length = (lenfunc)Tally_len,
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubemr._tally.Tally",
    .tp_doc = PyDoc_STR("Counts of the keys of batches whose pairs all hold one value object."),
    .tp_basicsize = sizeof(Tally),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Tally_new,
    .tp_dealloc = (destructor)Tally_dealloc,
    .tp_traverse = (traverseproc)Tally_traverse,
    .tp_clear = (inquiry)Tally_clear,
    .tp_methods = Tally_methods,
    .tp_as_sequence = &Tally_as_sequence,
};

static struct PyModuleDef tally_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kubemr._tally",
    .m_doc = "The map buffer's count of keys whose values are all one object.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__tally(void)
{
    if (PyType_Ready(&TallyType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&tally_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&TallyType);
    if (PyModule_AddObject(module, "Tally", (PyObject *)&TallyType) < 0) {
        Py_DECREF(&TallyType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
