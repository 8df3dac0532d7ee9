package datasets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// FileInfo is what one pass over an input file learns: its size and
// SHA-256, and, for uncompressed JSONL, where it can be split into byte
// ranges of whole lines for parallel reading.
type FileInfo struct {
	Bytes  int64
	SHA256 string
	Splits []ByteRange // empty when the file is read whole
}

// ScanFile hashes a file and, when it is uncompressed JSONL larger than
// splitBytes (and splitBytes > 0), cuts it into ranges of about
// splitBytes that start at line starts, recording the record index
// (non-blank lines before) and line number at each.
func ScanFile(ctx context.Context, file string, splitBytes int64) (FileInfo, error) {
	var info FileInfo
	rc, err := Open(ctx, file)
	if err != nil {
		return info, err
	}
	defer rc.Close()
	cont, comp, _ := DetectContainer(file)
	splittable := splitBytes > 0 && cont == ContainerJSONL && comp == CompressionNone
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var (
		off       int64 // offset of buf[0]
		lineStart int64 // offset where the current line starts
		lines     int64 // lines completed
		records   int64 // non-blank lines completed
		nonBlank  bool  // current line has a non-space byte
		cut       = splitBytes
		cur       = ByteRange{}
	)
	for {
		n, rerr := rc.Read(buf)
		chunk := buf[:n]
		h.Write(chunk)
		if splittable {
			for i := 0; i < len(chunk); {
				j := bytes.IndexByte(chunk[i:], '\n')
				seg := chunk[i:]
				if j >= 0 {
					seg = chunk[i : i+j]
				}
				if !nonBlank && len(bytes.TrimSpace(seg)) > 0 {
					nonBlank = true
				}
				if j < 0 {
					break
				}
				i += j + 1
				lines++
				if nonBlank {
					records++
				}
				nonBlank = false
				lineStart = off + int64(i)
				if lineStart >= cut {
					cur.End = lineStart
					info.Splits = append(info.Splits, cur)
					cur = ByteRange{Start: lineStart, FirstIndex: records, FirstLine: lines}
					cut = lineStart + splitBytes
				}
			}
		}
		off += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return info, fmt.Errorf("read %s: %w", file, rerr)
		}
	}
	info.Bytes = off
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	if len(info.Splits) > 0 {
		if cur.Start < off {
			cur.End = off
			info.Splits = append(info.Splits, cur)
		}
	}
	return info, nil
}
