package datasets

import (
	"encoding/binary"
	"errors"
	"math"
)

// Binary encoding of Sample, used as the Beam coder of PCollections of
// samples (JSON would cost several times more CPU per shuffle). The format
// is private to a run: a version byte, then every field in declaration
// order; strings and lists are uvarint-length-prefixed, optional values
// have a presence byte.

const codecVersion = 2

// AppendBinary appends the binary encoding of s to dst.
func (s *Sample) AppendBinary(dst []byte) []byte {
	dst = append(dst, codecVersion)
	dst = appendString(dst, s.ID)
	dst = binary.AppendUvarint(dst, uint64(len(s.Messages)))
	for _, m := range s.Messages {
		dst = appendString(dst, m.Role)
		dst = appendString(dst, m.Content)
	}
	dst = appendString(dst, s.Source.Dataset)
	dst = appendString(dst, s.Source.File)
	dst = binary.AppendVarint(dst, s.Source.Index)
	dst = appendString(dst, s.License)
	dst = appendString(dst, s.DupCluster)
	dst = appendFloat(dst, s.Quality)
	dst = appendFloat(dst, s.JudgeScore)
	dst = appendString(dst, s.Judge)
	if s.TopicID == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.AppendVarint(dst, int64(*s.TopicID))
	}
	dst = appendString(dst, s.TopicLabel)
	if s.TopicDistance == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(*s.TopicDistance))
	}
	dst = appendString(dst, s.Meta)
	return dst
}

// MarshalBinary encodes s.
func (s *Sample) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 64+s.size())), nil
}

func (s *Sample) size() int {
	n := len(s.ID) + len(s.Source.Dataset) + len(s.Source.File) + len(s.License) + len(s.Meta) + len(s.Judge)
	for _, m := range s.Messages {
		n += len(m.Role) + len(m.Content) + 4
	}
	return n
}

var errCodec = errors.New("sample codec: malformed encoding")

// UnmarshalBinary decodes what AppendBinary encoded.
func (s *Sample) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if d.byte() != codecVersion {
		return errCodec
	}
	*s = Sample{}
	s.ID = d.string()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errCodec
	}
	if n > 0 {
		s.Messages = make([]Message, n)
		for i := range s.Messages {
			s.Messages[i].Role = d.string()
			s.Messages[i].Content = d.string()
		}
	}
	s.Source.Dataset = d.string()
	s.Source.File = d.string()
	s.Source.Index = d.varint()
	s.License = d.string()
	s.DupCluster = d.string()
	s.Quality = d.float()
	s.JudgeScore = d.float()
	s.Judge = d.string()
	if d.byte() == 1 {
		t := int32(d.varint())
		s.TopicID = &t
	}
	s.TopicLabel = d.string()
	if d.byte() == 1 {
		if len(d.b) < 4 {
			return errCodec
		}
		v := math.Float32frombits(binary.LittleEndian.Uint32(d.b))
		d.b = d.b[4:]
		s.TopicDistance = &v
	}
	s.Meta = d.string()
	if d.err || len(d.b) != 0 {
		return errCodec
	}
	return nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendFloat(dst []byte, f *float64) []byte {
	if f == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(*f))
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = true
		d.b = nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) float() *float64 {
	if d.byte() == 0 {
		return nil
	}
	if len(d.b) < 8 {
		d.err = true
		return nil
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return &f
}
