// Package arrowcheck reads Parquet files with Apache Arrow (arrow-go), an
// implementation independent of the parquet-go library sieve writes with,
// so tests can check that what sieve writes is what other readers see.
package arrowcheck

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Info is what Apache Arrow (arrow-go, the Go port of the library
// behind pyarrow and Hugging Face datasets) makes of a Parquet file.
type Info struct {
	// Schema is the Arrow schema's String(), less the "PARQUET:field_id"
	// metadata pqarrow attaches to every top-level field.
	Schema string
	// MessagesType is the Arrow type String() of the messages field, empty
	// when there is no such field.
	MessagesType string
	// Rows is the number of rows of the table Arrow decoded.
	Rows int64
	// Codecs are the distinct compression codec names (e.g. "ZSTD") over
	// all column chunks, sorted.
	Codecs []string
	// Metadata is the footer's key-value metadata.
	Metadata map[string]string
}

// Inspect opens a Parquet file with arrow-go, independently of the
// parquet-go based shard codec, decodes every row into an Arrow table and
// reports its schema, row count and compression codecs. Tests of other
// packages use it as an independent check that shards are readable by the
// Arrow ecosystem.
func Inspect(r io.ReaderAt, size int64) (Info, error) {
	pf, err := file.NewParquetReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return Info{}, fmt.Errorf("arrow: open parquet: %w", err)
	}
	defer pf.Close()

	var info Info
	md := pf.MetaData()
	for i := 0; i < md.NumRowGroups(); i++ {
		rg := md.RowGroup(i)
		for j := 0; j < rg.NumColumns(); j++ {
			cc, err := rg.ColumnChunk(j)
			if err != nil {
				return Info{}, fmt.Errorf("arrow: row group %d column %d: %w", i, j, err)
			}
			if name := cc.Compression().String(); !slices.Contains(info.Codecs, name) {
				info.Codecs = append(info.Codecs, name)
			}
		}
	}
	slices.Sort(info.Codecs)
	if kv := md.KeyValueMetadata(); kv.Len() > 0 {
		info.Metadata = make(map[string]string, kv.Len())
		for _, e := range kv {
			if e.Value != nil {
				info.Metadata[e.Key] = *e.Value
			} else {
				info.Metadata[e.Key] = ""
			}
		}
	}

	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		return Info{}, fmt.Errorf("arrow: %w", err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return Info{}, fmt.Errorf("arrow: schema: %w", err)
	}
	info.Schema = withoutFieldIDs(schema).String()
	if fields, ok := schema.FieldsByName("messages"); ok && len(fields) > 0 {
		info.MessagesType = fields[0].Type.String()
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		return Info{}, fmt.Errorf("arrow: read table: %w", err)
	}
	defer tbl.Release()
	info.Rows = tbl.NumRows()
	return info, nil
}

// withoutFieldIDs returns schema with the "PARQUET:field_id" entry dropped
// from each top-level field's metadata, which pqarrow adds (as "-1" when the
// file has no field IDs) and which would otherwise clutter String().
func withoutFieldIDs(schema *arrow.Schema) *arrow.Schema {
	fields := schema.Fields()
	for i, f := range fields {
		var keys, vals []string
		for j, k := range f.Metadata.Keys() {
			if k != "PARQUET:field_id" {
				keys = append(keys, k)
				vals = append(vals, f.Metadata.Values()[j])
			}
		}
		fields[i].Metadata = arrow.NewMetadata(keys, vals)
	}
	md := schema.Metadata()
	return arrow.NewSchema(fields, &md)
}
