package transforms

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/util/gcsx"

	"github.com/sieve-data/sieve/datasets"
)

// StoredChecksum tells a gs:// object's content from its attributes (one
// metadata request, no body read): the CRC32C and MD5 that GCS computes
// on upload and the object's generation, which changes with every write.
// Composite objects have no MD5; the CRC32C and generation still name
// them. Other schemes have no stored checksum (ok false).
func (beamFS) StoredChecksum(ctx context.Context, path string) (int64, string, bool, error) {
	if !strings.HasPrefix(path, "gs://") {
		return -1, "", false, nil
	}
	bucket, object, err := gcsx.ParseObject(path)
	if err != nil {
		return -1, "", false, err
	}
	client, err := gcsClient(ctx)
	if err != nil {
		return -1, "", false, err
	}
	attrs, err := client.Bucket(bucket).Object(object).Attrs(ctx)
	if err != nil {
		return -1, "", false, fmt.Errorf("%s: %w", path, err)
	}
	sum := fmt.Sprintf("gcs:crc32c=%08x,generation=%d", attrs.CRC32C, attrs.Generation)
	if len(attrs.MD5) > 0 {
		sum += ",md5=" + hex.EncodeToString(attrs.MD5)
	}
	return attrs.Size, sum, true, nil
}

var _ datasets.Checksummer = beamFS{}

var (
	gcsMu     sync.Mutex
	gcsShared *storage.Client
)

// gcsClient is one storage client for the process, made as Beam's gcs
// file system makes its own: application default credentials, else
// unauthenticated access. STORAGE_EMULATOR_HOST points it at an
// emulator, as it does Beam's.
func gcsClient(ctx context.Context) (*storage.Client, error) {
	gcsMu.Lock()
	defer gcsMu.Unlock()
	if gcsShared != nil {
		return gcsShared, nil
	}
	c, err := gcsx.NewClient(context.WithoutCancel(ctx), storage.ScopeReadOnly)
	if err != nil {
		if c, err = gcsx.NewUnauthenticatedClient(context.WithoutCancel(ctx)); err != nil {
			return nil, fmt.Errorf("gcs client: %w", err)
		}
	}
	gcsShared = c
	return c, nil
}
