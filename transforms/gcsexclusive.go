package transforms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"cloud.google.com/go/storage"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/util/gcsx"
	"google.golang.org/api/googleapi"

	"github.com/sieve-data/sieve/datasets"
)

// CreateExclusive creates a gs:// object only if no object of that name
// exists: a create-only write (the precondition ifGenerationMatch=0,
// storage.Conditions{DoesNotExist: true}), which GCS decides atomically
// when the upload completes. The store claims version numbers and takes
// its dataset lock with it. When the object exists, the writer's Close
// returns an error matching fs.ErrExist and nothing is written. Other
// schemes have no exclusive create here (errors.ErrUnsupported).
func (beamFS) CreateExclusive(ctx context.Context, path string) (io.WriteCloser, error) {
	if !strings.HasPrefix(path, "gs://") {
		return nil, fmt.Errorf("%s: %w", path, errors.ErrUnsupported)
	}
	bucket, object, err := gcsx.ParseObject(path)
	if err != nil {
		return nil, err
	}
	client, err := gcsClient(ctx)
	if err != nil {
		return nil, err
	}
	w := client.Bucket(bucket).Object(object).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	return &exclusiveWriter{w: w, path: path}, nil
}

var _ datasets.ExclusiveCreator = beamFS{}

type exclusiveWriter struct {
	w    *storage.Writer
	path string
}

func (e *exclusiveWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	return n, e.mapErr(err)
}

func (e *exclusiveWriter) Close() error { return e.mapErr(e.w.Close()) }

// mapErr turns GCS's answer to a failed precondition (HTTP 412) into
// fs.ErrExist.
func (e *exclusiveWriter) mapErr(err error) error {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed {
		return fmt.Errorf("%s: %w", e.path, fs.ErrExist)
	}
	return err
}
