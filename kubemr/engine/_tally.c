/* kubemr.engine._tally: the map buffer's count of keys whose values are all one object.

   A word count's mapper emits (word, 1) for every word. The map buffer keeps such pairs as a
   count per key instead of a list of values (kubemr/mapbuffer.py). Tally.add checks that every
   pair of a batch holds that one value object and counts the batch's keys in a hash table of
   machine-integer counts, where collections.Counter does two dict lookups and makes a new int
   object per pair. mapbuffer.py has the same Tally in Python, used when this module was not
   compiled. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

/* An open-addressing table of (tags, key, count) slots, probed linearly: a lookup of a str
   key of at most 15 bytes (nearly every word) touches the slot alone, as the slot holds the
   key's bytes in its two tags; a longer key's lookup touches the stored key too. A dict of
   positions would touch its index, its entry, the key, a position object and a count. A str
   key is hashed over its characters with a fast hash seeded per process (CPython's own str
   hash, SipHash, is slower and is cached in str objects that a mapper makes anew for every
   pair); other keys use their Python hash. */

typedef struct {
    uint64_t tag, tag2; /* as Tags */
    PyObject *key; /* NULL: an empty slot */
    Py_ssize_t count;
} Slot;

/* A key as the table tells it apart. A str of at most 15 bytes: its bytes, its length and its
   width (equal tags, equal keys), tag2 never LONG_KEY. Any other key: its hash in `tag`, and
   tag2 LONG_KEY (its lookup compares the stored key). */
typedef struct {
    uint64_t tag, tag2;
} Tags;

#define LONG_KEY UINT64_MAX

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask; /* the number of slots, a power of two, minus one */
    Py_ssize_t size;
    uint64_t version; /* changes on every insert: user __eq__ may add keys under a lookup */
} Tally;

#define FIRST_SLOTS 1024
#define HUGE_PAGE ((size_t)2 << 20)
static uint64_t seed;

static inline uint64_t
mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    return x ^ (x >> 32);
}

/* A mixed hash, never -1 (the error value of Python's hashes). */
static inline Py_hash_t
as_hash(uint64_t x)
{
    Py_hash_t hash = (Py_hash_t)mix(x);
    return hash == -1 ? -2 : hash;
}

static inline uint64_t
load32(const unsigned char *p)
{
    uint32_t word;
    memcpy(&word, p, 4);
    return word;
}

static inline uint64_t
load64(const unsigned char *p)
{
    uint64_t word;
    memcpy(&word, p, 8);
    return word;
}

/* The n <= 7 bytes at p, in whole loads (no byte-by-byte copy to read back, which stalls):
   different strings of n bytes give different words, with the top byte 0. */
static inline uint64_t
short_bytes(const unsigned char *p, size_t n)
{
    if (n >= 4)
        return load32(p) | (load32(p + n - 4) >> (8 * (8 - n))) << 32;
    if (n > 0)
        return (uint64_t)p[0] | (uint64_t)p[n >> 1] << 8 | (uint64_t)p[n - 1] << 16;
    return 0;
}

/* The Tags of a str of n <= 15 bytes of `kind`: its first bytes in `tag`, the rest in tag2
   with n and kind in tag2's top byte (never 0, so never LONG_KEY's 0xff either). */
static inline Tags
str_tags(const unsigned char *p, size_t n, int kind)
{
    uint64_t size = (uint64_t)(n | (size_t)kind << 4) << 56;
    if (n < 8)
        return (Tags){short_bytes(p, n), size};
    return (Tags){load64(p), short_bytes(p + 8, n - 8) | size};
}

/* The table's hash of a key of these tags: a slot's own, worked out again as the table grows. */
static inline Py_hash_t
tags_hash(Tags tags)
{
    if (tags.tag2 == LONG_KEY)
        return (Py_hash_t)tags.tag;
    return as_hash(seed ^ tags.tag ^ tags.tag2 * 0x9e3779b97f4a7c15ULL);
}

/* A str key's hash and its Tags. */
static inline Py_hash_t
str_hash(PyObject *key, Tags *tags)
{
    const unsigned char *p = PyUnicode_DATA(key);
    int kind = PyUnicode_KIND(key);
    size_t n = (size_t)PyUnicode_GET_LENGTH(key) * kind;
    if (n <= 15) {
        *tags = str_tags(p, n, kind);
        return tags_hash(*tags);
    }
    uint64_t h = seed ^ n, word;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&word, p, 8);
        h = (h ^ word) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 31;
    }
    if (n) {
        word = 0;
        memcpy(&word, p, n);
        h = (h ^ word) * 0x9e3779b97f4a7c15ULL;
    }
    Py_hash_t hash = as_hash(h);
    *tags = (Tags){(uint64_t)hash, LONG_KEY};
    return hash;
}

static Py_hash_t
key_hash(PyObject *key, Tags *tags)
{
    if (PyUnicode_Check(key)) {
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(key) < 0)
            return -1;
#endif
        return str_hash(key, tags);
    }
    /* Mixed, as a table index takes the low bits: an int's hash is the int itself. */
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1)
        return -1;
    hash = as_hash((uint64_t)hash);
    *tags = (Tags){(uint64_t)hash, LONG_KEY};
    return hash;
}

/* 1 if equal, 0 if not, -1 on error. Two str compare by their characters: CPython keeps every
   str in its narrowest kind, so equal strings have equal kinds and bytes. */
static int
keys_equal(PyObject *stored, PyObject *key)
{
    if (stored == key)
        return 1;
    if (PyUnicode_CheckExact(stored) && PyUnicode_CheckExact(key)) {
        Py_ssize_t length = PyUnicode_GET_LENGTH(key);
        return PyUnicode_GET_LENGTH(stored) == length
            && PyUnicode_KIND(stored) == PyUnicode_KIND(key)
            && memcmp(PyUnicode_DATA(stored), PyUnicode_DATA(key),
                      length * PyUnicode_KIND(key)) == 0;
    }
    Py_INCREF(stored);
    int equal = PyObject_RichCompareBool(stored, key, Py_EQ);
    Py_DECREF(stored);
    return equal;
}

static PyObject *
Tally_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Tally() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0); /* the slots come with the first key */
}

static int
Tally_traverse(Tally *self, visitproc visit, void *arg)
{
    for (size_t i = 0; self->slots && i <= self->mask; i++)
        Py_VISIT(self->slots[i].key);
    return 0;
}

static int
Tally_clear(Tally *self)
{
    Slot *slots = self->slots;
    size_t mask = self->mask;
    self->slots = NULL;
    self->mask = 0;
    self->size = 0;
    self->version++;
    for (size_t i = 0; slots && i <= mask; i++)
        Py_XDECREF(slots[i].key);
    free(slots);
    return 0;
}

static void
Tally_dealloc(Tally *self)
{
    PyObject_GC_UnTrack(self);
    Tally_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
grow(Tally *self)
{
    size_t mask = self->slots ? 2 * (self->mask + 1) - 1 : FIRST_SLOTS - 1;
    /* two slots to a cache line, none across two */
    size_t bytes = (mask + 1) * sizeof(Slot);
    Slot *slots = aligned_alloc(bytes >= HUGE_PAGE ? HUGE_PAGE : 64, bytes);
#ifdef MADV_HUGEPAGE
    if (slots != NULL && bytes >= HUGE_PAGE)
        madvise(slots, bytes, MADV_HUGEPAGE);
#endif
    if (slots != NULL)
        memset(slots, 0, bytes);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; self->slots && i <= self->mask; i++) {
        Slot *old = &self->slots[i];
        if (old->key == NULL)
            continue;
        size_t j = (size_t)tags_hash((Tags){old->tag, old->tag2}) & mask;
        while (slots[j].key != NULL)
            j = (j + 1) & mask;
        slots[j] = *old;
    }
    free(self->slots);
    self->slots = slots;
    self->mask = mask;
    self->version++;
    return 0;
}

/* Count one key; `hash` and `tags` are its key_hash, or hash is -1 for count_key to work
   them out. */
static int
count_key(Tally *self, PyObject *key, Py_hash_t hash, Tags tags)
{
    if (hash == -1 && (hash = key_hash(key, &tags)) == -1)
        return -1;
    if (self->slots == NULL && grow(self) < 0)
        return -1;
restart:;
    uint64_t version = self->version;
    size_t i = (size_t)hash & self->mask;
    for (;; i = (i + 1) & self->mask) {
        Slot *slot = &self->slots[i];
        if (slot->key == NULL)
            break;
        if (slot->tag != tags.tag || slot->tag2 != tags.tag2)
            continue;
        if (tags.tag2 != LONG_KEY) { /* equal str */
            slot->count++;
            return 0;
        }
        int equal = keys_equal(slot->key, key);
        if (equal < 0)
            return -1;
        if (self->version != version)
            goto restart;
        if (equal) {
            slot->count++;
            return 0;
        }
    }
    Py_INCREF(key);
    self->slots[i] = (Slot){tags.tag, tags.tag2, key, 1};
    self->size++;
    self->version++;
    if ((size_t)self->size * 2 > self->mask + 1)
        return grow(self);
    return 0;
}

/* count_key for a plain str key with its str_hash and tags, inlined: a key of at most 15
   bytes is found by its tags in the slot, a longer one compared with a stored str, neither
   running user code, so the table cannot change under it. A stored long key of another type
   (counted by add) leaves the lookup to count_key. */
static inline int
count_str(Tally *self, PyObject *key, Py_hash_t hash, Tags tags)
{
    for (size_t i = (size_t)hash & self->mask;; i = (i + 1) & self->mask) {
        Slot *slot = &self->slots[i];
        if (slot->key == NULL)
            break;
        if (slot->tag != tags.tag || slot->tag2 != tags.tag2)
            continue;
        if (tags.tag2 != LONG_KEY) {
            slot->count++;
            return 0;
        }
        PyObject *stored = slot->key;
        if (!PyUnicode_CheckExact(stored))
            return count_key(self, key, hash, tags);
        Py_ssize_t length = PyUnicode_GET_LENGTH(key);
        int kind = PyUnicode_KIND(key);
        if (stored == key || (PyUnicode_GET_LENGTH(stored) == length
                              && PyUnicode_KIND(stored) == kind
                              && memcmp(PyUnicode_DATA(stored), PyUnicode_DATA(key),
                                        (size_t)length * kind) == 0)) {
            slot->count++;
            return 0;
        }
    }
    return count_key(self, key, hash, tags); /* a new key: inserted there */
}

static inline int
is_plain_str(PyObject *key)
{
#if PY_VERSION_HEX < 0x030C0000
    return PyUnicode_CheckExact(key) && PyUnicode_IS_READY(key);
#else
    return PyUnicode_CheckExact(key);
#endif
}

/* 0 unless every item of `batch` is a (key, value) tuple holding `value`; then 2 if every key
   is a str (hashed with no user code), else 1. */
static int
all_hold(PyObject *batch, PyObject *value)
{
    int keys_are_str = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *pair = PyList_GET_ITEM(batch, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || PyTuple_GET_ITEM(pair, 1) != value)
            return 0;
        keys_are_str &= is_plain_str(PyTuple_GET_ITEM(pair, 0));
    }
    return 1 + keys_are_str;
}

#define AHEAD 4

static inline Py_hash_t
hash_ahead(Tally *self, PyObject *batch, Py_ssize_t i, Tags *tags)
{
    PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(batch, i), 0);
    Py_hash_t hash = str_hash(key, tags);
    __builtin_prefetch(&self->slots[(size_t)hash & self->mask]);
    return hash;
}

/* Count a batch of str keys: no user code runs, so the batch cannot change under the loop,
   and each key's slot is fetched into the cache AHEAD keys before it is looked up. */
static int
count_str_keys(Tally *self, PyObject *batch)
{
    Py_ssize_t n = PyList_GET_SIZE(batch);
    Py_hash_t hashes[AHEAD];
    Tags tags[AHEAD];
    if (self->slots == NULL && grow(self) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < AHEAD && i < n; i++)
        hashes[i] = hash_ahead(self, batch, i, &tags[i]);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_hash_t hash = hashes[i % AHEAD];
        Tags tag = tags[i % AHEAD];
        if (i + AHEAD < n)
            hashes[i % AHEAD] = hash_ahead(self, batch, i + AHEAD, &tags[i % AHEAD]);
        if (count_str(self, PyTuple_GET_ITEM(PyList_GET_ITEM(batch, i), 0), hash, tag) < 0)
            return -1;
    }
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
    int holds = all_hold(batch, value);
    if (holds == 0)
        Py_RETURN_FALSE;
    if (holds == 2) {
        if (count_str_keys(self, batch) < 0)
            return NULL;
        Py_RETURN_TRUE;
    }
    /* A key's __hash__ or __eq__ is user code: hold each pair while counting it. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *pair = PyList_GET_ITEM(batch, i);
        Py_INCREF(pair);
        int failed = count_key(self, PyTuple_GET_ITEM(pair, 0), -1, (Tags){0, 0});
        Py_DECREF(pair);
        if (failed)
            return NULL;
    }
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(Tally_pump_doc,
"pump(pairs, value, limit) -> (counted, rest)\n\n"
"Take up to `limit` items from the iterator `pairs` (the mapper's output) and count those\n"
"that are (str, value) tuples holding this very `value` object as they come, so that no\n"
"batch of them is ever listed. Stops early at the first item that is not such a pair:\n"
"`rest` is then a list holding it, for the caller to add another way, else an empty list.");

/* The pairs a pump has taken and not yet counted: each key's slot, then the key stored there,
   is fetched into the cache while the next pairs come, as count_str_keys does for a batch. */
typedef struct {
    PyObject *pairs[AHEAD];
    Py_hash_t hashes[AHEAD];
    Tags tags[AHEAD];
    Py_ssize_t taken, counted;
} Pending;

static inline PyObject *
pending_key(Pending *p, Py_ssize_t i)
{
    return PyTuple_GET_ITEM(p->pairs[i % AHEAD], 0);
}

/* Count the oldest pending pair. */
static int
count_oldest(Tally *self, Pending *p)
{
    Py_ssize_t i = p->counted % AHEAD;
    int failed = count_str(self, PyTuple_GET_ITEM(p->pairs[i], 0), p->hashes[i], p->tags[i]);
    Py_CLEAR(p->pairs[i]);
    p->counted++;
    return failed;
}

static void
drop_pending(Pending *p)
{
    for (; p->counted < p->taken; p->counted++)
        Py_CLEAR(p->pairs[p->counted % AHEAD]);
}

static PyObject *
Tally_pump(Tally *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyIter_Check(args[0]) || !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "Tally.pump(pairs: iterator, value, limit: int)");
        return NULL;
    }
    PyObject *pairs = args[0], *value = args[1], *rest = NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (self->slots == NULL && grow(self) < 0)
        return NULL;
    iternextfunc next = Py_TYPE(pairs)->tp_iternext;
    Pending p = {.taken = 0, .counted = 0};
    while (p.taken < limit) {
        PyObject *pair = next(pairs);
        if (pair == NULL) {
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_StopIteration))
                    goto error;
                PyErr_Clear();
            }
            break;
        }
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || PyTuple_GET_ITEM(pair, 1) != value
                || !is_plain_str(PyTuple_GET_ITEM(pair, 0))) {
            rest = pair;
            break;
        }
        if (p.taken - p.counted == AHEAD && count_oldest(self, &p) < 0) {
            Py_DECREF(pair);
            goto error;
        }
        Py_ssize_t i = p.taken % AHEAD;
        p.pairs[i] = pair;
        p.hashes[i] = str_hash(PyTuple_GET_ITEM(pair, 0), &p.tags[i]);
        __builtin_prefetch(&self->slots[(size_t)p.hashes[i] & self->mask]);
        Py_ssize_t j = (p.taken - AHEAD / 2) % AHEAD;
        if (p.taken - p.counted >= AHEAD / 2 && p.tags[j].tag2 == LONG_KEY) {
            /* its slot is in the cache by now: fetch the stored key it will be compared with */
            PyObject *stored = self->slots[(size_t)p.hashes[j] & self->mask].key;
            if (stored != NULL) {
                __builtin_prefetch(stored);
                __builtin_prefetch((char *)stored + sizeof(PyASCIIObject));
            }
        }
        p.taken++;
    }
    while (p.counted < p.taken)
        if (count_oldest(self, &p) < 0)
            goto error;
    PyObject *listed = rest ? PyList_New(1) : PyList_New(0);
    if (listed == NULL) {
        Py_XDECREF(rest);
        return NULL;
    }
    if (rest)
        PyList_SET_ITEM(listed, 0, rest);
    return Py_BuildValue("(nN)", p.counted, listed);
error:
    drop_pending(&p);
    Py_XDECREF(rest);
    return NULL;
}

PyDoc_STRVAR(Tally_items_doc,
"items() -> list of (key, count), in no particular order");

static PyObject *
Tally_items(Tally *self, PyObject *unused)
{
    PyObject *items = PyList_New(self->size);
    if (items == NULL)
        return NULL;
    Py_ssize_t n = 0;
    for (size_t i = 0; self->slots && i <= self->mask && n < self->size; i++) {
        Slot *slot = &self->slots[i];
        if (slot->key == NULL)
            continue;
        PyObject *item = Py_BuildValue("(On)", slot->key, slot->count);
        if (item == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        PyList_SET_ITEM(items, n++, item);
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
    {"pump", (PyCFunction)(void (*)(void))Tally_pump, METH_FASTCALL, Tally_pump_doc},
    {"items", (PyCFunction)Tally_items, METH_NOARGS, Tally_items_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Tally_as_sequence = {
    .sq_length = (lenfunc)Tally_len,
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubemr.engine._tally.Tally",
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
    .m_name = "kubemr.engine._tally",
    .m_doc = "The map buffer's count of keys whose values are all one object.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__tally(void)
{
    PyObject *name = PyUnicode_FromString("kubemr.engine._tally");
    if (name == NULL)
        return NULL;
    seed = mix((uint64_t)PyObject_Hash(name)); /* salted per process, as Python's str hash */
    Py_DECREF(name);
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
