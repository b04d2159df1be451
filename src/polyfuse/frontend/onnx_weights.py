"""Parse an .onnx file without copying its weights twice.

``onnx.load`` reads the file (one copy of every weight), protobuf parses it into messages
(a second) and ``numpy_helper.to_array`` turns each initializer into an array (a third):
BERT-base's 440 MB took ~1 s of the ~3 s of ``polyfuse estimate``. Here the file is read
once; a scan of the protobuf wire format finds each initializer's ``raw_data`` field and
leaves it out of the bytes handed to protobuf, and the weights become read-only numpy views
of the file's bytes.

Only the plain layout is taken apart: one ``graph`` field, initializers of the ordinary
element types with their bytes in ``raw_data``. Anything else (an unknown wire type, a
truncated field, a tensor stored in typed fields, externally or in segments) is left in the
bytes protobuf parses, or, where the scan cannot tell, :func:`split_weights` returns None and
the caller loads the file the usual way, with the usual errors.
"""
from __future__ import annotations

import sys

import numpy as np
import onnx

# ModelProto.graph, GraphProto.initializer, and TensorProto's fields read here.
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_T_DATA_TYPE, _T_SEGMENT, _T_RAW_DATA, _T_DATA_LOCATION = 2, 3, 9, 14
_MIN_BYTES = 1024  # smaller tensors (shapes, scalars) stay in the message

# ONNX element types numpy holds natively (onnx_import adds the narrow ones).
PLAIN = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT64: np.uint64, onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT16: np.uint16, onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.BOOL: np.bool_,
}


class _Malformed(Exception):
    pass


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _header(field: int, length: int) -> bytes:
    """The key and length of a length-delimited field."""
    return _encode_varint(field << 3 | 2) + _encode_varint(length)


def _fields(buf, pos: int, end: int):
    """(field number, wire type, start of the field's key, start of its payload, end) per field."""
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos_end = _varint(buf, pos, end)
        elif wire == 1:
            pos_end = pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            pos_end = pos + n
        elif wire == 5:
            pos_end = pos + 4
        else:  # groups (3, 4) are not used by ONNX
            raise _Malformed
        if pos_end > end:
            raise _Malformed
        yield field, wire, start, pos, pos_end
        pos = pos_end


def _split_tensor(buf, pos: int, end: int):
    """(the tensor's bytes without raw_data, (offset, length) of raw_data) or None to keep it whole."""
    kept, raw, data_type = [], None, None
    for field, wire, start, p, q in _fields(buf, pos, end):
        if field == _T_RAW_DATA and wire == 2:
            if raw is not None:
                return None
            raw = (p, q - p)
            continue
        if field == _T_DATA_TYPE and wire == 0:
            data_type = _varint(buf, p, q)[0]
        elif field in (_T_SEGMENT, _T_DATA_LOCATION):
            return None  # segmented or external: onnx handles it
        kept.append(buf[start:q])
    if raw is None or raw[1] < _MIN_BYTES or data_type not in PLAIN:
        return None
    return b"".join(kept), raw


def split_weights(data: bytes):
    """(ModelProto without the large initializers' raw_data, {initializer index: uint8 view of its
    bytes}), or None when the file does not have the plain layout (load it with onnx instead)."""
    if sys.byteorder != "little":
        return None  # raw_data is little-endian; numpy_helper swaps bytes, views cannot
    buf = memoryview(data)
    try:
        graphs = [f for f in _fields(buf, 0, len(buf)) if f[0] == _MODEL_GRAPH]
        if len(graphs) != 1 or graphs[0][1] != 2:
            return None
        _, _, gstart, gpos, gend = graphs[0]
        parts, raws, index = [], {}, 0
        for field, wire, start, p, q in _fields(buf, gpos, gend):
            initializer = field == _GRAPH_INITIALIZER and wire == 2
            split = _split_tensor(buf, p, q) if initializer else None
            if split is None:
                parts.append(buf[start:q])
            else:
                body, (off, n) = split
                parts.append(_header(_GRAPH_INITIALIZER, len(body)) + body)
                raws[index] = np.frombuffer(data, dtype=np.uint8, count=n, offset=off)
            index += initializer
    except _Malformed:
        return None
    graph = b"".join(parts)
    stripped = b"".join([buf[:gstart], _header(_MODEL_GRAPH, len(graph)), graph, buf[gend:]])
    proto = onnx.ModelProto()
    proto.ParseFromString(stripped)
    return proto, raws


def tensor_view(t: onnx.TensorProto, raw: np.ndarray) -> np.ndarray:
    """Initializer ``t`` (whose raw_data :func:`split_weights` took out) as a read-only view of ``raw``."""
    dtype = np.dtype(PLAIN[t.data_type])
    shape = tuple(int(d) for d in t.dims)
    count = int(np.prod(shape, dtype=np.int64))
    if raw.nbytes != count * dtype.itemsize:
        raise ValueError(f"raw_data holds {raw.nbytes} bytes, its shape {list(shape)} of "
                         f"{dtype.name} needs {count * dtype.itemsize}")
    return raw.view(dtype).reshape(shape)
