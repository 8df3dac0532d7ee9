package pipelines

import (
	"context"

	"github.com/sieve-data/sieve/datasets"
)

// scanInput learns what the plan needs of an input file. A file on an
// object store that keeps checksums (gs://) is not read: its size and
// stored checksum (CRC32C, MD5, generation) come from its attributes, and
// it is read whole by one task, its byte ranges left unsplit (the driver
// would have to read it to find line starts). A local file is read once
// for its SHA-256 and split points.
func scanInput(ctx context.Context, file string, splitBytes int64) (datasets.FileInfo, string, error) {
	size, sum, ok, err := datasets.StoredChecksum(ctx, file)
	if err != nil {
		return datasets.FileInfo{}, "", err
	}
	if ok {
		return datasets.FileInfo{Bytes: size}, sum, nil
	}
	info, err := datasets.ScanFile(ctx, file, splitBytes)
	return info, "", err
}
