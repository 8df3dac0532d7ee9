package transforms

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

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
	// The client retries refused connections and 5xx without end; a
	// store that does not answer should fail the plan, not hang it.
	actx, cancel := context.WithTimeout(ctx, attrsTimeout)
	defer cancel()
	attrs, err := client.Bucket(bucket).Object(object).Attrs(actx)
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

// attrsTimeout bounds one object's metadata request, retries included.
var attrsTimeout = 2 * time.Minute

var (
	gcsMu     sync.Mutex
	gcsShared *storage.Client
	// gcsFor is the STORAGE_EMULATOR_HOST that gcsShared was made for: a
	// process that points it elsewhere (tests, each with its own fake
	// server) gets a new client, not one bound to a server now gone.
	gcsFor string
)

// gcsClient is one storage client for the process, made as Beam's gcs
// file system makes its own: application default credentials (read and
// write: the store's version claims and lock are written with it), else
// unauthenticated access. STORAGE_EMULATOR_HOST points it at an
// emulator, as it does Beam's.
func gcsClient(ctx context.Context) (*storage.Client, error) {
	gcsMu.Lock()
	defer gcsMu.Unlock()
	host := os.Getenv("STORAGE_EMULATOR_HOST")
	if gcsShared != nil && gcsFor == host {
		return gcsShared, nil
	}
	if gcsShared != nil {
		gcsShared.Close()
		gcsShared = nil
	}
	c, err := gcsx.NewClient(context.WithoutCancel(ctx), storage.ScopeReadWrite)
	if err != nil {
		if c, err = gcsx.NewUnauthenticatedClient(context.WithoutCancel(ctx)); err != nil {
			return nil, fmt.Errorf("gcs client: %w", err)
		}
	}
	gcsShared, gcsFor = c, host
	return c, nil
}
