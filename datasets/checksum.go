package datasets

import "context"

// Checksummer is implemented by a file system that keeps a checksum of
// every file and tells it without reading the file: an object store's
// stored CRC32C/MD5 and generation. Plans hash their inputs with it
// instead of reading them on the driver (see StoredChecksum).
type Checksummer interface {
	// StoredChecksum returns the file's size and a string that names its
	// content (e.g. "gcs:crc32c=…,md5=…,generation=…"): equal strings
	// mean equal bytes, and any write changes it. ok is false when the
	// file system keeps no checksum for path; then the caller hashes the
	// file itself.
	StoredChecksum(ctx context.Context, path string) (size int64, sum string, ok bool, err error)
}

// StoredChecksum returns what the file system serving path keeps of its
// content, without reading it; ok is false for local files and wherever
// the file system keeps nothing usable (then hash the file: ScanFile).
func StoredChecksum(ctx context.Context, path string) (size int64, sum string, ok bool, err error) {
	fs, err := FSFor(path)
	if err != nil {
		return -1, "", false, err
	}
	c, isC := fs.(Checksummer)
	if !isC {
		return -1, "", false, nil
	}
	return c.StoredChecksum(ctx, path)
}
