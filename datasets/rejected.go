package datasets

// Rejected is a sample a stage dropped, with why: the stage, a short
// stable reason (the funnel counts by it), a detail such as the measured
// value and threshold, and for duplicates the id of the sample kept
// instead.
type Rejected struct {
	Stage    string `json:"stage"`
	Reason   string `json:"reason"`
	Detail   string `json:"detail,omitempty"`
	Survivor string `json:"survivor,omitempty"`
	Sample   Sample `json:"sample"`
}

// AppendBinary appends the binary encoding of r (see Sample.AppendBinary).
func (r *Rejected) AppendBinary(dst []byte) []byte {
	dst = appendString(dst, r.Stage)
	dst = appendString(dst, r.Reason)
	dst = appendString(dst, r.Detail)
	dst = appendString(dst, r.Survivor)
	return r.Sample.AppendBinary(dst)
}

// UnmarshalBinary decodes what AppendBinary encoded.
func (r *Rejected) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	r.Stage = d.string()
	r.Reason = d.string()
	r.Detail = d.string()
	r.Survivor = d.string()
	if d.err {
		return errCodec
	}
	return r.Sample.UnmarshalBinary(d.b)
}
