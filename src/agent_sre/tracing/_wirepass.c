/* The span pass over OTLP wire bytes (ExportTraceServiceRequest), without a Python object
 * per attribute.
 *
 * scan()  reads what the span pass needs from each span: ids, name, times, error status,
 *         the wanted attribute values (resource's, then span's) and the span's kind where
 *         the exact tables decide it.
 * build() writes the forwarded request: the node's resource attributes, ``agent.span.kind``
 *         appended to spans that lacked it, spans replaced (enriched in Python) or dropped
 *         (malformed ids); every other byte is copied as it came.
 *
 * The request was decoded by protobuf before it gets here (that is the validation: UTF-8,
 * nesting, wire types of known fields); this code still never reads out of bounds and fails
 * with ValueError on any malformed input (it is fuzzed under ASan/UBSan).
 *
 * Wire-format rules followed, as protobuf's own parser applies them: the last occurrence of
 * a scalar field wins; occurrences of an embedded message merge; a known field number with
 * another wire type is an unknown field; in a oneof the last member seen wins.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* -- reading ------------------------------------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct {
    uint32_t number;
    int wt;
    uint64_t varint;       /* WT_VARINT, WT_I64, WT_I32 values */
    const uint8_t *data;   /* WT_LEN payload */
    size_t len;
    const uint8_t *start;  /* the whole field, tag included */
    const uint8_t *end;
} Field;

static int read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && p < end; shift += 7) {
        uint8_t b = *p++;
        if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 1;
        }
    }
    return 0;
}

static int skip_group(const uint8_t **pp, const uint8_t *end, uint32_t number);

/* Reads the next field at *pp: 1 read, 0 at the end, -1 malformed. */
static int next_field(const uint8_t **pp, const uint8_t *end, Field *f) {
    const uint8_t *p = *pp;
    if (p >= end) return 0;
    uint64_t tag;
    f->start = p;
    if (!read_varint(&p, end, &tag)) return -1;
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->varint = 0;
    switch (f->wt) {
    case WT_VARINT:
        if (!read_varint(&p, end, &f->varint)) return -1;
        break;
    case WT_I64:
        if (end - p < 8) return -1;
        memcpy(&f->varint, p, 8); /* little-endian hosts only (checked at import) */
        p += 8;
        break;
    case WT_LEN: {
        uint64_t n;
        if (!read_varint(&p, end, &n)) return -1;
        if (n > (uint64_t)(end - p)) return -1;
        f->data = p;
        f->len = (size_t)n;
        p += n;
        break;
    }
    case WT_SGROUP:
        if (skip_group(&p, end, f->number) < 0) return -1;
        break;
    case WT_I32: {
        uint32_t v;
        if (end - p < 4) return -1;
        memcpy(&v, p, 4);
        f->varint = v;
        p += 4;
        break;
    }
    default:
        return -1; /* a stray end-group or wire type 6/7 */
    }
    f->end = p;
    *pp = p;
    return 1;
}

/* Skips a group's fields up to its end-group tag (nested groups counted, no recursion). */
static int skip_group(const uint8_t **pp, const uint8_t *end, uint32_t number) {
    const uint8_t *p = *pp;
    uint32_t stack[64];
    int depth = 0;
    stack[depth++] = number;
    while (depth > 0) {
        uint64_t tag, ignored;
        if (!read_varint(&p, end, &tag)) return -1;
        uint32_t num = (uint32_t)(tag >> 3);
        if (num == 0 || (tag >> 3) > 0x1fffffff) return -1;
        switch ((int)(tag & 7)) {
        case WT_VARINT:
            if (!read_varint(&p, end, &ignored)) return -1;
            break;
        case WT_I64:
            if (end - p < 8) return -1;
            p += 8;
            break;
        case WT_LEN:
            if (!read_varint(&p, end, &ignored)) return -1;
            if (ignored > (uint64_t)(end - p)) return -1;
            p += ignored;
            break;
        case WT_SGROUP:
            if (depth >= 64) return -1;
            stack[depth++] = num;
            break;
        case WT_EGROUP:
            if (stack[depth - 1] != num) return -1;
            depth--;
            break;
        case WT_I32:
            if (end - p < 4) return -1;
            p += 4;
            break;
        default:
            return -1;
        }
    }
    *pp = p;
    return 0;
}

static PyObject *malformed(const char *what) {
    PyErr_Format(PyExc_ValueError, "malformed OTLP request: %s", what);
    return NULL;
}

/* -- the wanted keys: an open-addressing table of UTF-8 keys ---------------------------- */

enum { IN_SPAN = 1, IN_RESOURCE = 2 };

typedef struct {
    const char *key; /* UTF-8 of the str object (owned by it) */
    Py_ssize_t len;
    PyObject *obj;   /* borrowed from the caller's tuples */
    int flags;
} Slot;

typedef struct {
    Slot *slots;
    size_t mask;
    double max_magnitude; /* a double beyond it (or NaN) is ignored */
} KeyTable;

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int table_add(KeyTable *t, PyObject *key, int flags) {
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "wanted keys must be str");
        return -1;
    }
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(key, &len);
    if (utf8 == NULL) return -1;
    size_t i = (size_t)hash_bytes((const uint8_t *)utf8, (size_t)len) & t->mask;
    while (t->slots[i].key != NULL) {
        if (t->slots[i].len == len && memcmp(t->slots[i].key, utf8, (size_t)len) == 0) {
            t->slots[i].flags |= flags;
            return 0;
        }
        i = (i + 1) & t->mask;
    }
    t->slots[i].key = utf8;
    t->slots[i].len = len;
    t->slots[i].obj = key;
    t->slots[i].flags = flags;
    return 0;
}

static const Slot *table_find(const KeyTable *t, const uint8_t *p, size_t n) {
    size_t i = (size_t)hash_bytes(p, n) & t->mask;
    while (t->slots[i].key != NULL) {
        if ((size_t)t->slots[i].len == n && memcmp(t->slots[i].key, p, n) == 0)
            return &t->slots[i];
        i = (i + 1) & t->mask;
    }
    return NULL;
}

static int table_init(KeyTable *t, PyObject *span_keys, PyObject *resource_keys) {
    Py_ssize_t n = PyTuple_GET_SIZE(span_keys) + PyTuple_GET_SIZE(resource_keys);
    size_t size = 16;
    while (size < (size_t)n * 2 + 1) size <<= 1;
    t->slots = PyMem_Calloc(size, sizeof(Slot));
    if (t->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->mask = size - 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(span_keys); i++)
        if (table_add(t, PyTuple_GET_ITEM(span_keys, i), IN_SPAN) < 0) return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(resource_keys); i++)
        if (table_add(t, PyTuple_GET_ITEM(resource_keys, i), IN_RESOURCE) < 0) return -1;
    return 0;
}

/* -- attribute values ------------------------------------------------------------------ */

/* The scalar of an AnyValue given as its (merged) occurrences in a KeyValue: a new
 * reference, Py_None (borrowed-style marker: not a usable scalar, returned with a new
 * reference too) or NULL on error. *ignored is set for a non-finite double. */
static PyObject *any_value(const uint8_t *kv, size_t kv_len, double max_magnitude,
                           int *ignored) {
    const uint8_t *p = kv, *end = kv + kv_len;
    Field f, g;
    int r;
    uint32_t which = 0;
    const uint8_t *str = NULL;
    size_t str_len = 0;
    uint64_t bool_v = 0, int_v = 0, double_v = 0;
    *ignored = 0;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.number != 2 || f.wt != WT_LEN) continue;
        const uint8_t *q = f.data, *qend = f.data + f.len;
        while ((r = next_field(&q, qend, &g)) == 1) {
            switch (g.number) {
            case 1:
                if (g.wt == WT_LEN) which = 1, str = g.data, str_len = g.len;
                break;
            case 2:
                if (g.wt == WT_VARINT) which = 2, bool_v = g.varint;
                break;
            case 3:
                if (g.wt == WT_VARINT) which = 3, int_v = g.varint;
                break;
            case 4:
                if (g.wt == WT_I64) which = 4, double_v = g.varint;
                break;
            case 5:
            case 6:
            case 7:
                if (g.wt == WT_LEN) which = g.number;
                break;
            default:
                break;
            }
        }
        if (r < 0) return malformed("attribute value");
    }
    if (r < 0) return malformed("attribute");
    switch (which) {
    case 1:
        return PyUnicode_DecodeUTF8((const char *)str, (Py_ssize_t)str_len, "strict");
    case 2:
        return PyBool_FromLong(bool_v != 0);
    case 3:
        return PyLong_FromLongLong((long long)int_v);
    case 4: {
        double d;
        memcpy(&d, &double_v, 8);
        if (!(d >= -max_magnitude && d <= max_magnitude)) { /* NaN fails both */
            *ignored = 1;
            Py_RETURN_NONE;
        }
        return PyFloat_FromDouble(d);
    }
    default:
        Py_RETURN_NONE;
    }
}

/* The key of a KeyValue (the last occurrence of field 1). */
static int kv_key(const uint8_t *kv, size_t kv_len, const uint8_t **key, size_t *key_len) {
    const uint8_t *p = kv, *end = kv + kv_len;
    Field f;
    int r;
    *key = kv;
    *key_len = 0;
    while ((r = next_field(&p, end, &f)) == 1)
        if (f.number == 1 && f.wt == WT_LEN) *key = f.data, *key_len = f.len;
    return r;
}

/* Reads the wanted attributes of one message's field-``number`` KeyValues into ``into``;
 * returns how many wanted values were ignored (non-finite), or -1 on error. */
static int read_attrs(const uint8_t *msg, size_t msg_len, uint32_t number, const KeyTable *t,
                      int flag, PyObject *into) {
    double max_magnitude = t->max_magnitude;
    const uint8_t *p = msg, *end = msg + msg_len;
    Field f;
    int r, ignored = 0;
    /* hot path: per attribute */
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.number != number || f.wt != WT_LEN) continue;
        const uint8_t *key;
        size_t key_len;
        if (kv_key(f.data, f.len, &key, &key_len) < 0) {
            malformed("attribute");
            return -1;
        }
        const Slot *slot = table_find(t, key, key_len);
        if (slot == NULL || !(slot->flags & flag)) continue;
        int bad;
        PyObject *value = any_value(f.data, f.len, max_magnitude, &bad);
        if (value == NULL) return -1;
        ignored += bad;
        if (value != Py_None && PyDict_SetItem(into, slot->obj, value) < 0) {
            Py_DECREF(value);
            return -1;
        }
        Py_DECREF(value);
    }
    if (r < 0) {
        malformed("attributes");
        return -1;
    }
    return ignored;
}

/* -- classification -------------------------------------------------------------------- */

typedef struct {
    PyObject *keys[4];   /* agent.span.kind, gen_ai.operation.name, openinference, traceloop */
    PyObject *tables[4]; /* value -> AgentSpanKind (exact) */
    PyObject *other;     /* AgentSpanKind.OTHER */
} Kinds;

/* The span's kind (borrowed) and whether it was stated, or NULL with no error set when
 * only Python's case mapping can tell (the reference ``classify`` decides those). */
static PyObject *classify(const Kinds *k, PyObject *attrs, int *explicit_kind) {
    *explicit_kind = 0;
    for (int i = 0; i < 4; i++) {
        PyObject *v = PyDict_GetItemWithError(attrs, k->keys[i]);
        if (v == NULL) {
            if (PyErr_Occurred()) PyErr_Clear();
            continue;
        }
        if (!PyUnicode_CheckExact(v)) continue;
        PyObject *kind = PyDict_GetItemWithError(k->tables[i], v);
        if (kind != NULL) {
            *explicit_kind = i == 0;
            return kind;
        }
        if (PyErr_Occurred()) PyErr_Clear();
        if (i == 1) continue; /* gen_ai.operation.name is matched exactly */
        if (!PyUnicode_IS_ASCII(v)) return NULL;
        const char *s = (const char *)PyUnicode_DATA(v);
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        for (Py_ssize_t j = 0; j < n; j++) {
            /* upper() (explicit, OpenInference) or lower() (Traceloop) could match */
            if (i == 3 ? (s[j] >= 'A' && s[j] <= 'Z') : (s[j] >= 'a' && s[j] <= 'z'))
                return NULL;
        }
    }
    return k->other;
}

/* -- scan ------------------------------------------------------------------------------- */

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} Out;

static int out_write(Out *o, const void *p, size_t n);

typedef struct {
    const KeyTable *table;
    const Kinds *kinds;
    PyObject *spans;     /* list */
    long ignored;        /* resources' ignored values, and spans with any */
    const uint8_t *base;
    PyObject *view_type; /* AgentSpan */
    Out *places;         /* (offset, length) of each valid span, int64 pairs */
} Scan;

static int scan_span(Scan *s, const uint8_t *msg, size_t len, PyObject *resource_attrs) {
    const uint8_t *p = msg, *end = msg + len;
    Field f, g;
    int r;
    const uint8_t *trace_id = msg, *span_id = msg, *parent = msg, *name = msg;
    size_t trace_len = 0, span_len = 0, parent_len = 0, name_len = 0;
    uint64_t start = 0, stop = 0;
    int64_t code = 0;
    while ((r = next_field(&p, end, &f)) == 1) {
        switch (f.number) {
        case 1:
            if (f.wt == WT_LEN) trace_id = f.data, trace_len = f.len;
            break;
        case 2:
            if (f.wt == WT_LEN) span_id = f.data, span_len = f.len;
            break;
        case 4:
            if (f.wt == WT_LEN) parent = f.data, parent_len = f.len;
            break;
        case 5:
            if (f.wt == WT_LEN) name = f.data, name_len = f.len;
            break;
        case 7:
            if (f.wt == WT_I64) start = f.varint;
            break;
        case 8:
            if (f.wt == WT_I64) stop = f.varint;
            break;
        case 15:
            if (f.wt == WT_LEN) {
                const uint8_t *q = f.data, *qend = f.data + f.len;
                while ((r = next_field(&q, qend, &g)) == 1)
                    if (g.number == 3 && g.wt == WT_VARINT) code = (int32_t)(uint32_t)g.varint;
                if (r < 0) {
                    malformed("span status");
                    return -1;
                }
            }
            break;
        default:
            break;
        }
    }
    if (r < 0) {
        malformed("span");
        return -1;
    }
    PyObject *entry;
    if (trace_len != 16 || span_len != 8 || all_zero(trace_id, 16) || all_zero(span_id, 8) ||
        (parent_len != 0 && parent_len != 8)) {
        entry = Py_BuildValue("(y#y#y#s#)", trace_id, (Py_ssize_t)trace_len, span_id,
                              (Py_ssize_t)span_len, parent, (Py_ssize_t)parent_len, name,
                              (Py_ssize_t)name_len);
    } else {
        PyObject *attrs = resource_attrs ? PyDict_Copy(resource_attrs) : PyDict_New();
        if (attrs == NULL) return -1;
        int ignored = read_attrs(msg, len, 9, s->table, IN_SPAN, attrs);
        if (ignored < 0) {
            Py_DECREF(attrs);
            return -1;
        }
        int explicit_kind;
        PyObject *kind = classify(s->kinds, attrs, &explicit_kind);
        s->ignored += ignored ? 1 : 0;
        PyObject *args[9] = {kind ? kind : Py_None, explicit_kind ? Py_True : Py_False, NULL,
                             NULL, NULL, NULL, NULL, code == 2 ? Py_True : Py_False, attrs};
        args[2] = PyUnicode_DecodeUTF8((const char *)name, (Py_ssize_t)name_len, "strict");
        args[3] = PyBytes_FromStringAndSize((const char *)trace_id, 16);
        args[4] = PyBytes_FromStringAndSize((const char *)span_id, 8);
        args[5] = PyLong_FromUnsignedLongLong((unsigned long long)start);
        args[6] = PyLong_FromUnsignedLongLong((unsigned long long)stop);
        entry = NULL;
        if (args[2] && args[3] && args[4] && args[5] && args[6])
            entry = PyObject_Vectorcall(s->view_type, args, 9, NULL);
        for (int i = 2; i < 7; i++) Py_XDECREF(args[i]);
        Py_DECREF(attrs);
        int64_t place[2] = {(int64_t)(msg - s->base), (int64_t)len};
        if (entry != NULL && out_write(s->places, place, sizeof place) < 0) Py_CLEAR(entry);
    }
    if (entry == NULL) return -1;
    int rc = PyList_Append(s->spans, entry);
    Py_DECREF(entry);
    return rc;
}

static int scan_resource_spans(Scan *s, const uint8_t *msg, size_t len) {
    const uint8_t *p = msg, *end = msg + len;
    Field f, g;
    int r;
    PyObject *resource_attrs = PyDict_New();
    if (resource_attrs == NULL) return -1;
    /* the resource first (its occurrences merge), wherever it stands */
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wt == WT_LEN) {
            int ignored = read_attrs(f.data, f.len, 1, s->table, IN_RESOURCE, resource_attrs);
            if (ignored < 0) goto fail;
            s->ignored += ignored;
        }
    }
    if (r < 0) {
        malformed("resource spans");
        goto fail;
    }
    PyObject *shared = PyDict_GET_SIZE(resource_attrs) ? resource_attrs : NULL;
    p = msg;
    while (next_field(&p, end, &f) == 1) {
        if (f.number != 2 || f.wt != WT_LEN) continue;
        const uint8_t *q = f.data, *qend = f.data + f.len;
        while ((r = next_field(&q, qend, &g)) == 1) {
            if (g.number == 2 && g.wt == WT_LEN && scan_span(s, g.data, g.len, shared) < 0)
                goto fail;
        }
        if (r < 0) {
            malformed("scope spans");
            goto fail;
        }
    }
    Py_DECREF(resource_attrs);
    return 0;
fail:
    Py_DECREF(resource_attrs);
    return -1;
}

static int kinds_init(Kinds *k, PyObject *spec) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 9) {
        PyErr_SetString(PyExc_TypeError, "kinds: (4 keys, 4 dicts, OTHER)");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        k->keys[i] = PyTuple_GET_ITEM(spec, i);
        k->tables[i] = PyTuple_GET_ITEM(spec, 4 + i);
        if (!PyUnicode_Check(k->keys[i]) || !PyDict_Check(k->tables[i])) {
            PyErr_SetString(PyExc_TypeError, "kinds: (4 keys, 4 dicts, OTHER)");
            return -1;
        }
    }
    k->other = PyTuple_GET_ITEM(spec, 8);
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(body, span_keys, resource_keys, kinds, view_type, max_magnitude)\n"
"-> (spans, places, ignored)\n\n"
"One entry per span, in request order: a valid span's view, ``view_type(kind or None,\n"
"explicit, name, trace_id, span_id, start_ns, end_ns, is_error, attrs)`` (None: only\n"
"Python's case mapping can classify it), or for a span with malformed ids the tuple\n"
"(trace_id, span_id, parent_span_id, name). ``places``: native int64 pairs, the offset and\n"
"length of each valid span's bytes in ``body``. ``ignored``: wanted double values ignored\n"
"as NaN or beyond ``max_magnitude`` (each resource's count, one per span that had any).");

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *span_keys, *resource_keys, *kind_spec, *view_type;
    double max_magnitude;
    if (!PyArg_ParseTuple(args, "y*O!O!OOd", &body, &PyTuple_Type, &span_keys, &PyTuple_Type,
                          &resource_keys, &kind_spec, &view_type, &max_magnitude))
        return NULL;
    KeyTable table = {NULL, 0, max_magnitude};
    Kinds kinds;
    Out places = {NULL, 0, 0};
    PyObject *result = NULL;
    Scan s = {&table, &kinds, NULL, 0, body.buf, view_type, &places};
    if (!PyCallable_Check(view_type)) {
        PyErr_SetString(PyExc_TypeError, "view_type must be callable");
        goto done;
    }
    if (kinds_init(&kinds, kind_spec) < 0 || table_init(&table, span_keys, resource_keys) < 0)
        goto done;
    s.spans = PyList_New(0);
    if (s.spans == NULL) goto done;
    const uint8_t *p = body.buf, *end = p + body.len;
    Field f;
    int r;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wt == WT_LEN && scan_resource_spans(&s, f.data, f.len) < 0)
            goto done;
    }
    if (r < 0) {
        malformed("request");
        goto done;
    }
    result = Py_BuildValue("(Oy#l)", s.spans, places.buf ? (const char *)places.buf : "",
                           (Py_ssize_t)places.len, s.ignored);
done:
    Py_XDECREF(s.spans);
    PyMem_Free(table.slots);
    PyMem_Free(places.buf);
    PyBuffer_Release(&body);
    return result;
}

/* -- writing ------------------------------------------------------------------------------ */

static int out_reserve(Out *o, size_t n) {
    if (o->cap - o->len >= n) return 0;
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len < n) {
        if (cap > ((size_t)PY_SSIZE_T_MAX) / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    uint8_t *buf = PyMem_Realloc(o->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = buf;
    o->cap = cap;
    return 0;
}

static int out_write(Out *o, const void *p, size_t n) {
    if (out_reserve(o, n) < 0) return -1;
    if (n) memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

static int out_varint(Out *o, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) tmp[n++] = (uint8_t)(v | 0x80), v >>= 7;
    tmp[n++] = (uint8_t)v;
    return out_write(o, tmp, n);
}

static int out_tag(Out *o, uint32_t number, int wt) {
    return out_varint(o, ((uint64_t)number << 3) | (uint64_t)wt);
}

/* A length-delimited field whose payload is written after this call: returns the mark to
 * pass to close_len(), which puts the length in front of the payload. */
static int open_len(Out *o, uint32_t number, size_t *mark) {
    if (out_tag(o, number, WT_LEN) < 0 || out_reserve(o, 10) < 0) return -1;
    *mark = o->len;
    o->len += 10; /* room for the longest varint; the payload is moved down after */
    return 0;
}

static int close_len(Out *o, size_t mark) {
    size_t payload = o->len - (mark + 10);
    size_t n = varint_size(payload);
    memmove(o->buf + mark + n, o->buf + mark + 10, payload);
    o->len = mark;
    uint8_t tmp[10];
    size_t i = 0;
    uint64_t v = payload;
    while (v >= 0x80) tmp[i++] = (uint8_t)(v | 0x80), v >>= 7;
    tmp[i++] = (uint8_t)v;
    memcpy(o->buf + mark, tmp, i);
    o->len = mark + i + payload;
    return 0;
}

static int out_bytes_field(Out *o, uint32_t number, const void *p, size_t n) {
    if (out_tag(o, number, WT_LEN) < 0 || out_varint(o, n) < 0) return -1;
    return out_write(o, p, n);
}

/* KeyValue{key, AnyValue{string_value}} as field ``number`` of the enclosing message. */
static int out_string_attr(Out *o, uint32_t number, PyObject *key, PyObject *value) {
    Py_ssize_t klen, vlen;
    const char *k = PyUnicode_AsUTF8AndSize(key, &klen);
    if (k == NULL) return -1;
    const char *v = PyUnicode_AsUTF8AndSize(value, &vlen);
    if (v == NULL) return -1;
    size_t any = 1 + varint_size((uint64_t)vlen) + (size_t)vlen;
    size_t kv = 1 + varint_size((uint64_t)klen) + (size_t)klen + 1 + varint_size(any) + any;
    if (out_tag(o, number, WT_LEN) < 0 || out_varint(o, kv) < 0) return -1;
    if (out_bytes_field(o, 1, k, (size_t)klen) < 0) return -1;
    if (out_tag(o, 2, WT_LEN) < 0 || out_varint(o, any) < 0) return -1;
    return out_bytes_field(o, 1, v, (size_t)vlen);
}

typedef struct {
    Out out;
    PyObject *edits;      /* list: one per span */
    Py_ssize_t next_edit;
    PyObject *kind_key;   /* "agent.span.kind" */
    PyObject *node_attrs; /* tuple of (key, value) */
    PyObject *override;   /* the key whose value the daemon always sets */
} Build;

static int build_span(Build *b, const Field *f) {
    if (b->next_edit >= PyList_GET_SIZE(b->edits)) {
        PyErr_SetString(PyExc_ValueError, "fewer edits than spans");
        return -1;
    }
    PyObject *edit = PyList_GET_ITEM(b->edits, b->next_edit++);
    Out *o = &b->out;
    if (edit == Py_None) return out_write(o, f->start, (size_t)(f->end - f->start));
    if (edit == Py_False) return 0;
    if (PyBytes_Check(edit))
        return out_bytes_field(o, 2, PyBytes_AS_STRING(edit), (size_t)PyBytes_GET_SIZE(edit));
    if (PyByteArray_Check(edit)) { /* encoded fields to append */
        size_t mark;
        if (open_len(o, 2, &mark) < 0 || out_write(o, f->data, f->len) < 0 ||
            out_write(o, PyByteArray_AS_STRING(edit), (size_t)PyByteArray_GET_SIZE(edit)) < 0)
            return -1;
        return close_len(o, mark);
    }
    if (PyUnicode_Check(edit)) {
        size_t mark;
        if (open_len(o, 2, &mark) < 0 || out_write(o, f->data, f->len) < 0 ||
            out_string_attr(o, 9, b->kind_key, edit) < 0)
            return -1;
        return close_len(o, mark);
    }
    PyErr_SetString(PyExc_TypeError, "an edit is None, False, str, bytearray or bytes");
    return -1;
}

static int build_scope(Build *b, const uint8_t *msg, size_t len) {
    const uint8_t *p = msg, *end = msg + len;
    Field f;
    int r;
    while ((r = next_field(&p, end, &f)) == 1) {
        int rc = f.number == 2 && f.wt == WT_LEN
                     ? build_span(b, &f)
                     : out_write(&b->out, f.start, (size_t)(f.end - f.start));
        if (rc < 0) return -1;
    }
    if (r < 0) {
        malformed("scope spans");
        return -1;
    }
    return 0;
}

static int key_equals(const uint8_t *key, size_t key_len, PyObject *obj) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
    return s != NULL && (size_t)n == key_len && memcmp(s, key, key_len) == 0;
}

/* The resource's attributes with the node's added (the merged occurrences as one). */
static int build_resource(Build *b, const uint8_t *msg, size_t len) {
    Out *o = &b->out;
    const uint8_t *p, *end = msg + len;
    Field f, r1;
    int r;
    Py_ssize_t n_node = PyTuple_GET_SIZE(b->node_attrs);
    /* which node keys are present; the last KeyValue carrying the override key */
    uint64_t present = 0;
    const uint8_t *last_override = NULL;
    for (int pass = 0; pass < 2; pass++) {
        p = msg;
        while ((r = next_field(&p, end, &f)) == 1) {
            if (f.number != 1 || f.wt != WT_LEN) continue;
            const uint8_t *ro = f.data, *roend = f.data + f.len;
            while ((r = next_field(&ro, roend, &r1)) == 1) {
                if (r1.number != 1 || r1.wt != WT_LEN) {
                    if (pass == 1 && out_write(o, r1.start, (size_t)(r1.end - r1.start)) < 0)
                        return -1;
                    continue;
                }
                const uint8_t *key;
                size_t key_len;
                if (kv_key(r1.data, r1.len, &key, &key_len) < 0) {
                    malformed("resource attribute");
                    return -1;
                }
                if (pass == 0) {
                    for (Py_ssize_t i = 0; i < n_node && i < 64; i++) {
                        PyObject *pair = PyTuple_GET_ITEM(b->node_attrs, i);
                        if (key_equals(key, key_len, PyTuple_GET_ITEM(pair, 0))) present |= 1ULL << i;
                    }
                    if (key_equals(key, key_len, b->override)) last_override = r1.start;
                    continue;
                }
                if (r1.start != last_override) {
                    if (out_write(o, r1.start, (size_t)(r1.end - r1.start)) < 0) return -1;
                    continue;
                }
                /* its value becomes the node's: the old values' bytes, then string_value
                 * (merged, the last oneof member wins) */
                PyObject *value = NULL;
                for (Py_ssize_t i = 0; i < n_node; i++) {
                    PyObject *pair = PyTuple_GET_ITEM(b->node_attrs, i);
                    if (PyUnicode_Compare(PyTuple_GET_ITEM(pair, 0), b->override) == 0)
                        value = PyTuple_GET_ITEM(pair, 1);
                }
                if (value == NULL) {
                    if (out_write(o, r1.start, (size_t)(r1.end - r1.start)) < 0) return -1;
                    continue;
                }
                size_t kv_mark, any_mark;
                if (open_len(o, 1, &kv_mark) < 0) return -1;
                const uint8_t *q = r1.data, *qend = r1.data + r1.len;
                Field g;
                while ((r = next_field(&q, qend, &g)) == 1)
                    if (!(g.number == 2 && g.wt == WT_LEN) &&
                        out_write(o, g.start, (size_t)(g.end - g.start)) < 0)
                        return -1;
                if (r < 0) {
                    malformed("resource attribute");
                    return -1;
                }
                if (open_len(o, 2, &any_mark) < 0) return -1;
                q = r1.data;
                while ((r = next_field(&q, qend, &g)) == 1)
                    if (g.number == 2 && g.wt == WT_LEN && out_write(o, g.data, g.len) < 0)
                        return -1;
                Py_ssize_t vlen;
                const char *v = PyUnicode_AsUTF8AndSize(value, &vlen);
                if (v == NULL || out_bytes_field(o, 1, v, (size_t)vlen) < 0) return -1;
                close_len(o, any_mark);
                close_len(o, kv_mark);
            }
            if (r < 0) {
                malformed("resource");
                return -1;
            }
        }
        if (r < 0) {
            malformed("resource spans");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < n_node; i++) {
        if (i < 64 && (present & (1ULL << i))) continue;
        PyObject *pair = PyTuple_GET_ITEM(b->node_attrs, i);
        if (out_string_attr(o, 1, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0)
            return -1;
    }
    return 0;
}

static int build_resource_spans(Build *b, const uint8_t *msg, size_t len) {
    Out *o = &b->out;
    const uint8_t *p = msg, *end = msg + len;
    Field f;
    int r;
    size_t mark;
    if (open_len(o, 1, &mark) < 0 || build_resource(b, msg, len) < 0) return -1;
    close_len(o, mark);
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wt == WT_LEN) continue; /* written above */
        if (f.number == 2 && f.wt == WT_LEN) {
            if (open_len(o, 2, &mark) < 0 || build_scope(b, f.data, f.len) < 0) return -1;
            close_len(o, mark);
        } else if (out_write(o, f.start, (size_t)(f.end - f.start)) < 0) {
            return -1;
        }
    }
    if (r < 0) {
        malformed("resource spans");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(build_doc,
"build(body, edits, kind_key, node_attrs, override) -> bytes\n\n"
"The request to forward: ``edits`` has one entry per span, in request order: None (as it\n"
"came), False (dropped), a str (``kind_key`` appended with that value), a bytearray\n"
"(encoded fields appended) or bytes (the span's new encoding). Each resource gets the ``node_attrs`` pairs it lacks and\n"
"``override``'s value set on its last KeyValue of that key.");

static PyObject *build(PyObject *self, PyObject *args) {
    Py_buffer body;
    Build b;
    memset(&b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*O!UO!U", &body, &PyList_Type, &b.edits, &b.kind_key,
                          &PyTuple_Type, &b.node_attrs, &b.override))
        return NULL;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(b.node_attrs); i++) {
        PyObject *pair = PyTuple_GET_ITEM(b.node_attrs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "node_attrs: pairs of str");
            goto done;
        }
    }
    if (out_reserve(&b.out, (size_t)body.len + 64 * (size_t)PyList_GET_SIZE(b.edits) + 256) < 0)
        goto done;
    const uint8_t *p = body.buf, *end = p + body.len;
    Field f;
    int r;
    while ((r = next_field(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wt == WT_LEN) {
            size_t mark;
            if (open_len(&b.out, 1, &mark) < 0 || build_resource_spans(&b, f.data, f.len) < 0)
                goto done;
            close_len(&b.out, mark);
        } else if (out_write(&b.out, f.start, (size_t)(f.end - f.start)) < 0) {
            goto done;
        }
    }
    if (r < 0) {
        malformed("request");
        goto done;
    }
    if (b.next_edit != PyList_GET_SIZE(b.edits)) {
        PyErr_SetString(PyExc_ValueError, "more edits than spans");
        goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)b.out.buf, (Py_ssize_t)b.out.len);
done:
    PyMem_Free(b.out.buf);
    PyBuffer_Release(&body);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"build", build, METH_VARARGS, build_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "agent_sre.tracing._wirepass",
    "The span pass over OTLP wire bytes (see agent_sre.tracing.wire).", -1, methods,
};

PyMODINIT_FUNC PyInit__wirepass(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "the wire pass reads little-endian fixed64 only");
        return NULL;
    }
    return PyModule_Create(&module);
}
