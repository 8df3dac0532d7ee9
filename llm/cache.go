package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// diskCache stores one JSON file per answered request under
// dir/KEY[:2]/KEY[2:].json, KEY being the hex SHA-256 cache key. Files are
// written to a temporary name in the same directory and renamed, so a
// reader (or a run killed mid-write) sees a whole file or none; a file that
// does not parse is treated as a miss and rewritten. Files are not synced:
// a machine crash may lose the last answers, which are then paid again.
type diskCache struct{ dir string }

// cacheEntry is the stored form of a Response. It holds no request text
// and never the API key.
type cacheEntry struct {
	V            int        `json:"v"`
	Key          string     `json:"key"`
	Model        string     `json:"model"`
	Text         string     `json:"text"`
	FinishReason string     `json:"finish_reason"`
	Usage        TokenUsage `json:"usage"`
	Created      string     `json:"created"`
}

func (c *diskCache) path(key string) string {
	return filepath.Join(c.dir, key[:2], key[2:]+".json")
}

// get returns the entry for key; ok is false on a miss or an unreadable
// file.
func (c *diskCache) get(key string) (cacheEntry, bool) {
	b, err := os.ReadFile(c.path(key))
	if err != nil {
		return cacheEntry{}, false
	}
	var e cacheEntry
	if err := json.Unmarshal(b, &e); err != nil || e.V != 1 || e.Key != key {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *diskCache) put(key string, r Response) error {
	e := cacheEntry{V: 1, Key: key, Model: r.Model, Text: r.Text, FinishReason: r.FinishReason,
		Usage: r.Usage, Created: time.Now().UTC().Format(time.RFC3339)}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.path(key))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("llm cache: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("llm cache: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("llm cache: %w", err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.Remove(f.Name())
		return fmt.Errorf("llm cache: %w", err)
	}
	if err := os.Rename(f.Name(), c.path(key)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("llm cache: %w", err)
	}
	return nil
}
