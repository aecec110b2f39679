/* kubemr.engine._lines: a block of input cut into lines, with each line's byte offset.

   The text and jsonl readers (kubemr/engine/formats.py) read their input a block at a time and
   hand the mapper (byte offset, line) records. split_lines makes a block's lines and offsets in
   one pass: a line of ASCII is copied into its str as it is, and only a line holding other
   bytes is decoded as UTF-8. Decoding a block whole makes every line of it as wide as its
   widest character (one emoji in 256 KiB of text: every line of the block stored four bytes a
   character, then narrowed one by one). formats.py has the same function in Python, used when
   this module was not compiled. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int
is_ascii(const char *p, Py_ssize_t n)
{
    uint64_t high = 0, word;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&word, p, 8);
        high |= word;
    }
    for (; n > 0; p++, n--)
        high |= (unsigned char)*p;
    return (high & 0x8080808080808080ULL) == 0;
}

/* A line's text: without a final CR, decoded as UTF-8 with invalid bytes replaced. */
static PyObject *
line_text(const char *p, Py_ssize_t n)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (!is_ascii(p, n))
        return PyUnicode_DecodeUTF8(p, n, "replace");
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), p, n);
    return text;
}

PyDoc_STRVAR(split_lines_doc,
"split_lines(data, offset, decode) -> (lines, offsets, rest)\n\n"
"The complete lines of the bytes `data` (each without its newline; with `decode`, text\n"
"without a final CR, decoded as UTF-8 with invalid bytes replaced; else bytes), the byte\n"
"offset of each line's start and of the end of the last one (`offset` being that of data's\n"
"first byte: one more offset than lines), and the bytes after the last newline.");

static PyObject *
split_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split_lines(data: bytes, offset: int, decode: bool)");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    int decode = PyObject_IsTrue(args[2]);
    if ((offset == -1 && PyErr_Occurred()) || decode < 0)
        return NULL;

    Py_ssize_t count = 0;
    for (const char *p = data, *end = data + size;
         (p = memchr(p, '\n', end - p)) != NULL; p++)
        count++;
    PyObject *lines = PyList_New(count), *offsets = PyList_New(count + 1);
    if (lines == NULL || offsets == NULL)
        goto error;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *newline = memchr(data + start, '\n', size - start);
        Py_ssize_t length = newline - (data + start);
        PyObject *line = decode ? line_text(data + start, length)
                                : PyBytes_FromStringAndSize(data + start, length);
        PyObject *at = PyLong_FromSsize_t(offset + start);
        if (line == NULL || at == NULL) {
            Py_XDECREF(line);
            Py_XDECREF(at);
            goto error;
        }
        PyList_SET_ITEM(lines, i, line);
        PyList_SET_ITEM(offsets, i, at);
        start += length + 1;
    }
    PyObject *at = PyLong_FromSsize_t(offset + start);
    if (at == NULL)
        goto error;
    PyList_SET_ITEM(offsets, count, at);
    PyObject *rest = PyBytes_FromStringAndSize(data + start, size - start);
    if (rest == NULL)
        goto error;
    return Py_BuildValue("(NNN)", lines, offsets, rest);
error:
    Py_XDECREF(lines);
    Py_XDECREF(offsets);
    return NULL;
}

static PyMethodDef lines_methods[] = {
    {"split_lines", (PyCFunction)(void (*)(void))split_lines, METH_FASTCALL, split_lines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef lines_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kubemr.engine._lines",
    .m_doc = "A block of input cut into lines, with each line's byte offset.",
    .m_size = -1,
    .m_methods = lines_methods,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    return PyModule_Create(&lines_module);
}
