package model

// The safetensors format (https://github.com/huggingface/safetensors):
//
//	bytes [0,8)      N, the header length, unsigned little-endian
//	bytes [8,8+N)    a JSON object: for each tensor name
//	                 {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//	                 plus an optional "__metadata__": {string: string};
//	                 may end with spaces (padding to a multiple of 8)
//	bytes [8+N, ...) the data buffer; offsets are relative to its start,
//	                 little-endian, row-major (C order), no gaps.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// DType names a safetensors element type.
type DType string

// Element types read by this package (F32, F16 and BF16 are also
// written). Integer and F64 tensors are converted to float32 on reading.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
)

// Size returns the size of one element in bytes, or 0 for an unknown
// type.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case F64, I64:
		return 8
	}
	return 0
}

// maxHeader bounds the JSON header, as the reference implementation does.
const maxHeader = 100 << 20

type stEntry struct {
	DType   DType    `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

func (e stEntry) numel() int64 {
	n := int64(1)
	for _, d := range e.Shape {
		n *= int64(d)
	}
	return n
}

// SafetensorsFile is an open safetensors file whose tensors are read on
// demand.
type SafetensorsFile struct {
	Path     string
	Metadata map[string]string // the "__metadata__" object, or nil

	f       *os.File
	entries map[string]stEntry
	base    int64 // offset of the data buffer in the file
}

// OpenSafetensors opens path and parses its header.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	st, err := parseSafetensors(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	st.Path = path
	return st, nil
}

func parseSafetensors(f *os.File) (*SafetensorsFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader || int64(n) > fi.Size()-8 {
		return nil, fmt.Errorf("header length %d out of range", n)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("parse header: %w", err)
	}
	st := &SafetensorsFile{f: f, entries: make(map[string]stEntry, len(raw)), base: 8 + int64(n)}
	dataLen := fi.Size() - st.base
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &st.Metadata); err != nil {
				return nil, fmt.Errorf("parse __metadata__: %w", err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		if e.DType.Size() == 0 {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q", name, e.DType)
		}
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in %v", name, e.Shape)
			}
		}
		b, end := e.Offsets[0], e.Offsets[1]
		if b < 0 || end < b || end > dataLen || end-b != e.numel()*int64(e.DType.Size()) {
			return nil, fmt.Errorf("tensor %q: data_offsets %v do not fit %s%v in a %d-byte buffer", name, e.Offsets, e.DType, e.Shape, dataLen)
		}
		st.entries[name] = e
	}
	return st, nil
}

// Close closes the file.
func (s *SafetensorsFile) Close() error { return s.f.Close() }

// Names returns the tensor names, sorted.
func (s *SafetensorsFile) Names() []string { return sortedKeys(s.entries) }

// Info returns the dtype and shape of tensor name.
func (s *SafetensorsFile) Info(name string) (DType, []int, bool) {
	e, ok := s.entries[name]
	return e.DType, e.Shape, ok
}

// Read returns tensor name converted to float32, with its shape.
func (s *SafetensorsFile) Read(name string) ([]float32, []int, error) {
	e, ok := s.entries[name]
	if !ok {
		return nil, nil, fmt.Errorf("model: %s: no tensor %q", s.Path, name)
	}
	dst := make([]float32, e.numel())
	if err := s.ReadInto(name, dst); err != nil {
		return nil, nil, err
	}
	return dst, e.Shape, nil
}

// ReadInto converts tensor name to float32 into dst, whose length must
// equal the tensor's number of elements. The file is read in chunks, so
// that a large tensor needs no second full-size buffer.
func (s *SafetensorsFile) ReadInto(name string, dst []float32) error {
	e, ok := s.entries[name]
	if !ok {
		return fmt.Errorf("model: %s: no tensor %q", s.Path, name)
	}
	if int64(len(dst)) != e.numel() {
		return fmt.Errorf("model: %s: tensor %q has %d elements, destination %d", s.Path, name, e.numel(), len(dst))
	}
	es := e.DType.Size()
	const chunk = 1 << 16 // elements per read
	buf := make([]byte, min(len(dst), chunk)*es)
	off := s.base + e.Offsets[0]
	for i := 0; i < len(dst); i += chunk {
		k := min(chunk, len(dst)-i)
		b := buf[:k*es]
		if _, err := s.f.ReadAt(b, off+int64(i*es)); err != nil {
			return fmt.Errorf("model: %s: read %q: %w", s.Path, name, err)
		}
		decode(e.DType, b, dst[i:i+k])
	}
	return nil
}

// decode converts little-endian elements of type d in b to dst.
func decode(d DType, b []byte, dst []float32) {
	le := binary.LittleEndian
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(b[2*i:])) << 16)
		}
	case F16:
		for i := range dst {
			dst[i] = f16ToF32(le.Uint16(b[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	case I64:
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	case I32:
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(b[4*i:])))
		}
	}
}

// encode converts src to little-endian elements of type d in b.
func encode(d DType, src []float32, b []byte) {
	le := binary.LittleEndian
	switch d {
	case F32:
		for i, v := range src {
			le.PutUint32(b[4*i:], math.Float32bits(v))
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(b[2*i:], f32ToBF16(v))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(b[2*i:], f32ToF16(v))
		}
	default:
		panic("model: cannot encode " + string(d))
	}
}

// f32ToBF16 rounds to nearest, ties to even, as torch does; NaN stays
// NaN.
func f32ToBF16(v float32) uint16 {
	u := math.Float32bits(v)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// f16ToF32 converts an IEEE 754 half to float32 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		// zero or subnormal: man × 2^-24
		v := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// f32ToF16 rounds to nearest, ties to even; overflow gives ±Inf.
func f32ToF16(v float32) uint16 {
	u := math.Float32bits(v)
	sign := uint16(u>>16) & 0x8000
	a := u & 0x7fffffff
	switch {
	case a > 0x7f800000: // NaN
		return sign | 0x7e00
	case a >= 0x477ff000: // rounds to ≥ 65520: Inf
		return sign | 0x7c00
	case a < 0x38800000: // below the smallest normal half (2^-14): subnormal or zero
		// value = a as float; half subnormal unit is 2^-24.
		f := math.Float32frombits(a)
		m := float64(f) * (1 << 24)
		r := math.RoundToEven(m)
		return sign | uint16(r) // r ≤ 1024 gives the smallest normal when 1024
	}
	// Normal: rebias exponent from 127 to 15, round mantissa 23→10 bits.
	a -= (127 - 15) << 23
	a += 0x0fff + (a>>13)&1
	return sign | uint16(a>>13)
}

// WriteSafetensors writes tensors to path in dtype (F32, BF16 or F16),
// names sorted, data in the same order, header padded with spaces to a
// multiple of 8 bytes. metadata (may be nil) becomes "__metadata__".
func WriteSafetensors(path string, tensors []NamedTensor, dtype DType, metadata map[string]string) error {
	if dtype != F32 && dtype != BF16 && dtype != F16 {
		return fmt.Errorf("model: write safetensors: unsupported dtype %q", dtype)
	}
	byName := make(map[string]NamedTensor, len(tensors))
	for _, t := range tensors {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("model: write safetensors: tensor %q has shape %v but %d values", t.Name, t.Shape, len(t.Data))
		}
		if _, dup := byName[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("model: write safetensors: duplicate or reserved name %q", t.Name)
		}
		byName[t.Name] = t
	}
	names := sortedKeys(byName)
	var hdr strings.Builder
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		mb, err := json.Marshal(metadata)
		if err != nil {
			return fmt.Errorf("model: write safetensors: %w", err)
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(mb)
	}
	var off int64
	for i, name := range names {
		t := byName[name]
		if i > 0 || len(metadata) > 0 {
			hdr.WriteByte(',')
		}
		nb, _ := json.Marshal(name)
		sb, _ := json.Marshal(t.Shape)
		if t.Shape == nil {
			sb = []byte("[]")
		}
		end := off + int64(len(t.Data)*dtype.Size())
		fmt.Fprintf(&hdr, `%s:{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}`, nb, dtype, sb, off, end)
		off = end
	}
	hdr.WriteByte('}')
	for (8+hdr.Len())%8 != 0 {
		hdr.WriteByte(' ')
	}

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	w.Write(lenBuf[:])
	w.WriteString(hdr.String())
	const chunk = 1 << 16
	buf := make([]byte, chunk*dtype.Size())
	for _, name := range names {
		d := byName[name].Data
		for i := 0; i < len(d); i += chunk {
			k := min(chunk, len(d)-i)
			encode(dtype, d[i:i+k], buf)
			w.Write(buf[:k*dtype.Size()])
		}
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("model: write %s: %w", path, err)
	}
	return nil
}

// ShardIndex is model.safetensors.index.json: which file holds each
// tensor of a sharded checkpoint.
type ShardIndex struct {
	Metadata  map[string]any    `json:"metadata,omitempty"`
	WeightMap map[string]string `json:"weight_map"`
}

// LoadSafetensors fills p from a safetensors file, or from the shards
// listed by a model.safetensors.index.json, or from a directory holding
// model.safetensors or model.safetensors.index.json. Every parameter of
// p must be present with its shape; F32, BF16, F16 and F64 data are
// converted to float32. With tied embeddings a lm_head.weight in the
// file is ignored. Other tensors are an error (they would belong to an
// architecture this package does not implement), except the rotary
// inv_freq buffers of old checkpoints.
func (p *Params) LoadSafetensors(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		idx := filepath.Join(path, "model.safetensors.index.json")
		if _, err := os.Stat(idx); err == nil {
			path = idx
		} else {
			path = filepath.Join(path, "model.safetensors")
		}
	}
	files := []string{path}
	if strings.HasSuffix(path, ".json") {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("model: %w", err)
		}
		var idx ShardIndex
		if err := json.Unmarshal(data, &idx); err != nil {
			return fmt.Errorf("model: parse %s: %w", path, err)
		}
		seen := map[string]bool{}
		files = files[:0]
		for _, name := range sortedKeys(idx.WeightMap) {
			f := idx.WeightMap[name]
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(filepath.Dir(path), f))
			}
		}
		if len(files) == 0 {
			return fmt.Errorf("model: %s lists no tensors", path)
		}
	}

	want := map[string]NamedTensor{}
	for _, t := range p.Tensors() {
		want[t.Name] = t
	}
	loaded := map[string]bool{}
	for _, fn := range files {
		st, err := OpenSafetensors(fn)
		if err != nil {
			return err
		}
		for _, name := range st.Names() {
			t, ok := want[name]
			if !ok {
				if (name == "lm_head.weight" && p.Config.TieWordEmbeddings) || strings.HasSuffix(name, "rotary_emb.inv_freq") {
					continue
				}
				st.Close()
				return fmt.Errorf("model: %s: unexpected tensor %q (not a parameter of this %s config)", fn, name, p.Config.Family())
			}
			_, shape, _ := st.Info(name)
			if !equalShape(shape, t.Shape) {
				st.Close()
				return fmt.Errorf("model: %s: tensor %q has shape %v, config wants %v", fn, name, shape, t.Shape)
			}
			if err := st.ReadInto(name, t.Data); err != nil {
				st.Close()
				return err
			}
			loaded[name] = true
		}
		st.Close()
	}
	var missing []string
	for _, t := range p.Tensors() {
		if !loaded[t.Name] {
			missing = append(missing, t.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("model: %s: missing %d tensors: %s", path, len(missing), strings.Join(missing, ", "))
	}
	return nil
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Load reads a Hugging Face checkpoint directory: config.json, then
// model.safetensors or the shards of model.safetensors.index.json.
func Load(dir string) (*Params, error) {
	c, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	p, err := NewParams(c)
	if err != nil {
		return nil, err
	}
	if err := p.LoadSafetensors(dir); err != nil {
		return nil, err
	}
	return p, nil
}

// Save writes config.json and model.safetensors (in dtype: F32, BF16 or
// F16) to dir, creating it. The result loads in transformers with
// AutoModelForCausalLM.from_pretrained(dir) (the class of the config's
// model_type: LlamaForCausalLM, Qwen2ForCausalLM, ...). Tokenizer files are the
// caller's.
func (p *Params) Save(dir string, dtype DType) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	c := p.Config
	if c.Extra == nil {
		c.Extra = map[string]json.RawMessage{}
	} else {
		extra := make(map[string]json.RawMessage, len(c.Extra))
		for k, v := range c.Extra {
			extra[k] = v
		}
		c.Extra = extra
	}
	switch dtype {
	case F32:
		c.Extra["torch_dtype"] = json.RawMessage(`"float32"`)
	case BF16:
		c.Extra["torch_dtype"] = json.RawMessage(`"bfloat16"`)
	case F16:
		c.Extra["torch_dtype"] = json.RawMessage(`"float16"`)
	}
	if err := WriteConfig(dir, c); err != nil {
		return err
	}
	return WriteSafetensors(filepath.Join(dir, "model.safetensors"), p.Tensors(), dtype,
		map[string]string{"format": "pt"})
}
