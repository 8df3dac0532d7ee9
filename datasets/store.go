package datasets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Store is a root directory (local or any scheme of Beam's filesystem
// package) holding datasets as <root>/<name>/<version>/, each version
// with data/ shards and a manifest.json written last. A version directory
// without a manifest is not a version.
type Store struct {
	Root string
}

// Version directories are v1, v2, …; staging directories live under
// <root>/<name>/_staging/ until committed.
const (
	ManifestFile = "manifest.json"
	CardFile     = "README.md"
	stagingDir   = "_staging"
	// LastVersionFile, in a dataset's directory, holds the highest
	// version number ever given out (vN): numbers are never reused, even
	// after the newest versions are removed.
	LastVersionFile = "_last_version"
	// LeaseFile, in a staging directory, is renewed (its mtime) by the
	// live run that owns it; see CleanStaging.
	LeaseFile = "_lease"
	// LockFile, in a dataset's directory, is held by the run of that
	// dataset in progress; see Lock.
	LockFile = "_lock"
	// ClaimsDir, in a dataset's directory on an object store (gs://),
	// holds one object per version number given out (<name>/_claims/vN),
	// each created only if absent: the claim that makes a number one
	// run's, and the high-water mark that keeps it from being given out
	// again.
	ClaimsDir = "_claims"
	trashDir  = "_trash"
)

func (s Store) join(parts ...string) string {
	if isURL(s.Root) {
		return strings.TrimRight(s.Root, "/") + "/" + path.Join(parts...)
	}
	return filepath.Join(append([]string{s.Root}, parts...)...)
}

func isURL(p string) bool { return strings.Contains(p, "://") }

// DatasetDir is where a dataset's versions live.
func (s Store) DatasetDir(name string) string { return s.join(name) }

// VersionDir is a version's directory.
func (s Store) VersionDir(name, version string) string { return s.join(name, version) }

// NewStaging returns a fresh staging directory for a run of dataset name.
// On a local store the directory is created with a lease file that this
// process renews every LeaseRenew until Commit or Discard (or until the
// directory disappears), so CleanStaging never takes a live run's
// staging, however long the run.
func (s Store) NewStaging(name string) string {
	dir := s.join(name, stagingDir, newID())
	if isURL(s.Root) {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return dir // the pipeline's writers fail naming the cause
	}
	lease := filepath.Join(dir, LeaseFile)
	if err := os.WriteFile(lease, []byte(holder()), 0o644); err != nil {
		return dir
	}
	stop := make(chan struct{})
	leases.Store(dir, stop)
	go renew(lease, stop, LeaseRenew)
	return dir
}

// LeaseRenew is how often a live run touches its staging lease and its
// dataset lock.
var LeaseRenew = 30 * time.Second

// leases maps a staging directory to the channel that stops the renewal
// of its lease.
var leases sync.Map

// renew touches file every period until stop closes or the file is gone
// (committed, discarded, or removed by someone else).
func renew(file string, stop chan struct{}, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			now := time.Now()
			if err := os.Chtimes(file, now, now); err != nil {
				return
			}
		}
	}
}

// endLease stops renewing staging's lease and removes the lease file.
func endLease(staging string) {
	if stop, ok := leases.LoadAndDelete(staging); ok {
		close(stop.(chan struct{}))
	}
	os.Remove(filepath.Join(staging, LeaseFile))
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", time.Now().UTC().Format("20060102T150405Z"), os.Getpid(), hex.EncodeToString(b[:]))
}

// holder is what a lease or lock file holds: "PID HOST TIME".
func holder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d %s %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
}

// holderInfo parses a lease or lock file.
type holderInfo struct {
	pid   int
	host  string
	since string
}

func parseHolder(data []byte) (holderInfo, bool) {
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return holderInfo{}, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return holderInfo{}, false
	}
	h := holderInfo{pid: pid, host: f[1]}
	if len(f) > 2 {
		h.since = f[2]
	}
	return h, true
}

// gone tells whether the holder's process has certainly ended: it ran on
// this host and its pid is no longer alive. Another host's process
// cannot be judged.
func (h holderInfo) gone() bool {
	host, _ := os.Hostname()
	return h.host == host && !pidAlive(h.pid)
}

// Versions lists a dataset's committed versions (those with a manifest),
// oldest first.
func (s Store) Versions(ctx context.Context, name string) ([]string, error) {
	pattern := s.join(name, "v*", ManifestFile)
	files, err := List(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", name, err)
	}
	var nums []int
	for _, f := range files {
		v := path.Base(path.Dir(filepath.ToSlash(f)))
		if n, ok := versionNumber(v); ok {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = "v" + strconv.Itoa(n)
	}
	return out, nil
}

func versionNumber(v string) (int, bool) {
	if !strings.HasPrefix(v, "v") {
		return 0, false
	}
	n, err := strconv.Atoi(v[1:])
	return n, err == nil && n > 0
}

// Commit turns a complete staging directory into the dataset's next
// version. The manifest's Version is set here and the manifest is written
// last: on a local store the whole directory then appears at once by a
// rename; elsewhere (gs://) every file is copied first and the manifest
// after them, so a reader that looks for the manifest never sees a
// partial version.
//
// The number is one above both the dataset's high-water mark
// (LastVersionFile) and every vN directory present, with or without a
// manifest: a removed version's number is never given out again, and a
// directory an interrupted rm or commit left behind is skipped (with a
// warning naming it) rather than blocking the commit.
//
// The dataset card (README.md) is rendered by RenderCard once the version
// number is known and committed with the version.
func (s Store) Commit(ctx context.Context, staging string, m *Manifest) (string, error) {
	if isURL(s.Root) {
		return s.commitRemote(ctx, staging, m)
	}
	var lastErr error
	for attempt := 0; attempt < 100; attempt++ {
		next, err := s.nextNumber(ctx, m.Name)
		if err != nil {
			return "", err
		}
		if err := s.raiseLastVersion(ctx, m.Name, next); err != nil {
			return "", err
		}
		m.Version = "v" + strconv.Itoa(next)
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return "", err
		}
		final := s.VersionDir(m.Name, m.Version)
		card := RenderCard(m)
		if err := os.WriteFile(filepath.Join(staging, CardFile), card, 0o644); err != nil {
			return "", fmt.Errorf("write card: %w", err)
		}
		if err := os.WriteFile(filepath.Join(staging, ManifestFile), append(data, '\n'), 0o644); err != nil {
			return "", fmt.Errorf("write manifest: %w", err)
		}
		pauseBeforeCommit(staging) // a test hook (testhook.go); nothing unless set
		endLease(staging)
		if err := os.Rename(staging, final); err != nil {
			if _, statErr := os.Stat(final); statErr == nil {
				lastErr = fmt.Errorf("%s: %w", final, err)
				continue // another run took this number; try the next
			}
			return "", fmt.Errorf("commit %s: %w", final, err)
		}
		os.Remove(filepath.Dir(staging)) // the staging parent, if now empty
		return m.Version, nil
	}
	return "", fmt.Errorf("commit: could not allocate a version number for %s in %s (last tried %v)", m.Name, s.DatasetDir(m.Name), lastErr)
}

// commitRemote commits on an object store, which has no rename: the
// number is claimed first by creating <name>/_claims/vN only if absent
// (WriteExclusive; a run that loses the race to another takes the next
// number), then the card and every file are copied into vN/ and the
// manifest is written last, again only if absent, so that no commit
// overwrites another's version and a reader (Versions lists manifests)
// sees the version whole or not at all. On a scheme without exclusive
// create the number goes by the high-water mark alone, as before.
func (s Store) commitRemote(ctx context.Context, staging string, m *Manifest) (string, error) {
	var lastErr error
	for attempt := 0; attempt < 100; attempt++ {
		next, err := s.nextNumber(ctx, m.Name)
		if err != nil {
			return "", err
		}
		v := "v" + strconv.Itoa(next)
		claim := s.join(m.Name, ClaimsDir, v)
		exclusive := true
		if err := WriteExclusive(ctx, claim, []byte(holder())); exists(err) {
			lastErr = err
			continue // another run claimed this number; try the next
		} else if errors.Is(err, errors.ErrUnsupported) {
			exclusive = false
			if err := s.raiseLastVersion(ctx, m.Name, next); err != nil {
				return "", err
			}
		} else if err != nil {
			return "", fmt.Errorf("commit: claim %s: %w", claim, err)
		}
		m.Version = v
		data, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return "", err
		}
		data = append(data, '\n')
		final := s.VersionDir(m.Name, v)
		if err := WriteFile(ctx, staging+"/"+CardFile, RenderCard(m)); err != nil {
			return "", fmt.Errorf("write card: %w", err)
		}
		if err := copyTree(ctx, staging, final); err != nil {
			return "", fmt.Errorf("commit %s: %w", final, err)
		}
		manifest := final + "/" + ManifestFile
		if exclusive {
			err = WriteExclusive(ctx, manifest, data)
			if exists(err) {
				return "", fmt.Errorf("commit %s: another run committed this version although %s claimed it for this one (was the dataset's lock broken?): %w", final, claim, err)
			}
		} else {
			err = WriteFile(ctx, manifest, data)
		}
		if err != nil {
			return "", fmt.Errorf("commit %s: %w", final, err)
		}
		return v, nil
	}
	return "", fmt.Errorf("commit: could not claim a version number for %s in %s (last tried %v)", m.Name, s.DatasetDir(m.Name), lastErr)
}

// claimed is the highest version number claimed on an object store
// (<name>/_claims/vN; 0 when none).
func (s Store) claimed(ctx context.Context, name string) (int, error) {
	files, err := List(ctx, s.join(name, ClaimsDir, "v*"))
	if err != nil {
		return 0, fmt.Errorf("list version claims of %s: %w", name, err)
	}
	top := 0
	for _, f := range files {
		if n, ok := versionNumber(path.Base(filepath.ToSlash(f))); ok {
			top = max(top, n)
		}
	}
	return top, nil
}

// nextNumber is one above the dataset's high-water mark and every vN
// directory present. Directories without a manifest are reported (once
// per process and directory) as not versions.
func (s Store) nextNumber(ctx context.Context, name string) (int, error) {
	top, err := s.lastVersion(ctx, name)
	if err != nil {
		return 0, err
	}
	dirs, err := s.versionDirs(ctx, name)
	if err != nil {
		return 0, err
	}
	for _, n := range dirs {
		top = max(top, n)
	}
	if isURL(s.Root) {
		c, err := s.claimed(ctx, name)
		if err != nil {
			return 0, err
		}
		top = max(top, c)
	}
	incomplete, _ := s.Incomplete(ctx, name)
	for _, v := range incomplete {
		dir := s.VersionDir(name, v)
		if _, warned := warnedIncomplete.LoadOrStore(dir, true); !warned {
			slog.Warn(fmt.Sprintf("%s has no %s: not a version (left by an interrupted commit or rm); its number is skipped, and 'sieve datasets rm %s@%s' removes it", dir, ManifestFile, name, v))
		}
	}
	return top + 1, nil
}

var warnedIncomplete sync.Map

// versionDirs lists the numbers of a dataset's vN directories, committed
// or not.
func (s Store) versionDirs(ctx context.Context, name string) ([]int, error) {
	var nums []int
	if !isURL(s.Root) {
		entries, err := os.ReadDir(s.DatasetDir(name))
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("list versions of %s: %w", name, err)
		}
		for _, e := range entries {
			if n, ok := versionNumber(e.Name()); ok && e.IsDir() {
				nums = append(nums, n)
			}
		}
		sort.Ints(nums)
		return nums, nil
	}
	pattern := s.join(name, "v*", "*")
	files, err := List(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", name, err)
	}
	seen := map[int]bool{}
	for _, f := range files {
		if n, ok := versionNumber(path.Base(path.Dir(filepath.ToSlash(f)))); ok && !seen[n] {
			seen[n] = true
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// Incomplete lists a dataset's vN directories that hold no manifest:
// not versions, but what an interrupted commit or rm left behind.
func (s Store) Incomplete(ctx context.Context, name string) ([]string, error) {
	dirs, err := s.versionDirs(ctx, name)
	if err != nil {
		return nil, err
	}
	versions, err := s.Versions(ctx, name)
	if err != nil {
		return nil, err
	}
	committed := map[string]bool{}
	for _, v := range versions {
		committed[v] = true
	}
	var out []string
	for _, n := range dirs {
		if v := "v" + strconv.Itoa(n); !committed[v] {
			out = append(out, v)
		}
	}
	return out, nil
}

// lastVersion reads the dataset's high-water mark (0 when none).
func (s Store) lastVersion(ctx context.Context, name string) (int, error) {
	file := s.join(name, LastVersionFile)
	var data []byte
	var err error
	if isURL(s.Root) {
		if exists, _ := fileExists(ctx, file); !exists {
			return 0, nil
		}
		data, err = ReadFile(ctx, file)
	} else {
		data, err = os.ReadFile(file)
		if os.IsNotExist(err) {
			return 0, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	n, ok := versionNumber(strings.TrimSpace(string(data)))
	if !ok {
		return 0, fmt.Errorf("%s: want vN, got %q", file, strings.TrimSpace(string(data)))
	}
	return n, nil
}

// raiseLastVersion raises the high-water mark to n (never lowers it).
func (s Store) raiseLastVersion(ctx context.Context, name string, n int) error {
	cur, err := s.lastVersion(ctx, name)
	if err != nil {
		return err
	}
	if cur >= n {
		return nil
	}
	file := s.join(name, LastVersionFile)
	data := []byte("v" + strconv.Itoa(n) + "\n")
	if isURL(s.Root) {
		return WriteFile(ctx, file, data)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + "." + newID()
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

func fileExists(ctx context.Context, file string) (bool, error) {
	files, err := List(ctx, file)
	if err != nil {
		return false, err
	}
	return len(files) > 0, nil
}

// CleanStaging removes a dataset's stale staging directories, left by
// runs that crashed or were killed, and what an interrupted rm left in
// the dataset's trash. A staging directory is stale when its lease (see
// NewStaging) was last renewed more than age ago, or when the process
// named in the lease ran on this host and is gone. A live run renews its
// lease every LeaseRenew, so its staging is kept however long it runs.
// Directories without a lease (made by an older sieve) go by the pid in
// their name and their mtime, as before. It returns how many staging
// directories it removed. Only local stores are cleaned.
func (s Store) CleanStaging(name string, age time.Duration) (int, error) {
	if isURL(s.Root) {
		return 0, nil
	}
	if entries, err := os.ReadDir(s.join(name, trashDir)); err == nil {
		for _, e := range entries {
			if !processAlive(e.Name()) {
				os.RemoveAll(s.join(name, trashDir, e.Name()))
			}
		}
		os.Remove(s.join(name, trashDir)) // if now empty
	}
	dir := s.join(name, stagingDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !staleStaging(filepath.Join(dir, e.Name()), age) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// staleStaging judges one staging directory; see CleanStaging.
func staleStaging(dir string, age time.Duration) bool {
	lease := filepath.Join(dir, LeaseFile)
	if info, err := os.Stat(lease); err == nil {
		if time.Since(info.ModTime()) > age {
			return true
		}
		data, err := os.ReadFile(lease)
		if err != nil {
			return false
		}
		h, ok := parseHolder(data)
		return ok && h.pid != os.Getpid() && h.gone()
	}
	info, err := os.Stat(dir)
	if err != nil {
		return false
	}
	return time.Since(info.ModTime()) >= age || !processAlive(filepath.Base(dir))
}

// processAlive tells whether the process that made a staging or trash
// directory (named TIME-PID-RANDOM) still runs on this machine.
func processAlive(dir string) bool {
	parts := strings.Split(dir, "-")
	if len(parts) != 3 {
		return true // not ours to judge; only age removes it
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return true
	}
	return pidAlive(pid)
}

// pidAlive tells whether a process of this machine has the pid.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Datasets lists the names of datasets with at least one version.
func (s Store) Datasets(ctx context.Context) ([]string, error) {
	pattern := s.join("*", "v*", ManifestFile)
	files, err := List(ctx, pattern)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Root, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		name := path.Base(path.Dir(path.Dir(filepath.ToSlash(f))))
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// FindContent returns the version of dataset name whose manifest has the
// content id and whose files are whole, if any; see FindIntact.
func (s Store) FindContent(ctx context.Context, name, contentID string) (string, bool, error) {
	return s.FindIntact(ctx, name, contentID, nil)
}

// FindIntact returns the newest version of dataset name whose manifest
// has the content id, checking first that every shard the manifest lists
// is there with its size (cheap: nothing is re-hashed; 'sieve datasets
// verify' re-hashes). A version with the content id but missing or
// resized shards is passed over, and warn (when set) is told which
// version and what is wrong, so the caller rebuilds it.
func (s Store) FindIntact(ctx context.Context, name, contentID string, warn func(string)) (string, bool, error) {
	vs, err := s.Versions(ctx, name)
	if err != nil {
		return "", false, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		m, err := s.ReadManifest(ctx, name, vs[i])
		if err != nil {
			continue
		}
		if m.ContentID != contentID {
			continue
		}
		v := &Version{Store: s, Ref: Ref{Name: name, Version: vs[i]}, Dir: s.VersionDir(name, vs[i]), Manifest: m}
		if problems := v.CheckFiles(ctx); len(problems) > 0 {
			if warn != nil {
				warn(fmt.Sprintf("%s has the same content id but is damaged (%s); building a new version (shards checked for presence and size only)", v.Ref, describeProblems(problems)))
			}
			continue
		}
		return vs[i], true, nil
	}
	return "", false, nil
}

func describeProblems(problems []ShardProblem) string {
	var parts []string
	for i, p := range problems {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d more", len(problems)-i))
			break
		}
		parts = append(parts, p.Path+" "+p.Reason)
	}
	return strings.Join(parts, ", ")
}

// Children lists the versions (NAME@vN) of any dataset in the store that
// name ref as a parent. A child that recorded its parent's content id
// counts only when that id is the one ref has now: one built from a
// removed version is not the child of whatever holds the name later.
func (s Store) Children(ctx context.Context, ref Ref) ([]string, error) {
	names, err := s.Datasets(ctx)
	if err != nil {
		return nil, err
	}
	var cid string
	if m, err := s.ReadManifest(ctx, ref.Name, ref.Version); err == nil {
		cid = m.ContentID
	}
	var out []string
	for _, n := range names {
		vs, err := s.Versions(ctx, n)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			m, err := s.ReadManifest(ctx, n, v)
			if err != nil {
				continue
			}
			for _, p := range m.Parents {
				if p != ref.String() {
					continue
				}
				if recorded, ok := m.ParentContentID(p); ok && recorded != cid {
					continue
				}
				out = append(out, n+"@"+v)
			}
		}
	}
	return out, nil
}

// ParentCheck says whether a parent a manifest names is still the
// version it was built from.
type ParentCheck struct {
	Ref string
	// Recorded is the parent's content id as the child recorded it
	// (empty in manifests made before parent_content_ids).
	Recorded string
	// Current is the content id of the version under that name now
	// (empty when Missing).
	Current string
	Missing bool
}

// Changed tells whether the name now holds other data than the child
// was built from.
func (c ParentCheck) Changed() bool {
	return !c.Missing && c.Recorded != "" && c.Recorded != c.Current
}

// Problem describes what is wrong, or "" when nothing is.
func (c ParentCheck) Problem() string {
	switch {
	case c.Missing:
		return "missing from the store"
	case c.Changed():
		return fmt.Sprintf("content id differs: built from %s, the store now has %s (not the version this was built from)", short(c.Recorded), short(c.Current))
	}
	return ""
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// CheckParents compares each parent a manifest names with what the store
// holds under that name now.
func (s Store) CheckParents(ctx context.Context, m *Manifest) []ParentCheck {
	var out []ParentCheck
	for _, p := range m.Parents {
		c := ParentCheck{Ref: p}
		c.Recorded, _ = m.ParentContentID(p)
		r, err := ParseRef(p)
		if err == nil {
			pm, err := s.ReadManifest(ctx, r.Name, r.Version)
			if err == nil {
				c.Current = pm.ContentID
			} else {
				c.Missing = true
			}
		} else {
			c.Missing = true
		}
		out = append(out, c)
	}
	return out
}

// Remove deletes a committed version. The version directory is first
// renamed into the dataset's trash (<name>/_trash/…), so the version
// disappears at once and whole, then deleted; an rm interrupted while
// deleting leaves only trash, which the next run's CleanStaging empties.
// The dataset's high-water mark keeps the number from being given out
// again. It refuses when another version names it as a parent, unless
// force is set. A vN directory without a manifest (left by an older
// sieve's interrupted rm or commit) is removed too. Local stores only.
func (s Store) Remove(ctx context.Context, ref Ref, force bool) error {
	ref, err := s.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	dir := s.VersionDir(ref.Name, ref.Version)
	if _, err := s.ReadManifest(ctx, ref.Name, ref.Version); err != nil {
		if isURL(s.Root) {
			return err
		}
		if info, statErr := os.Stat(dir); statErr != nil || !info.IsDir() {
			return err
		}
		// Not a version: nothing can have been built from it.
	} else if !force {
		children, err := s.Children(ctx, ref)
		if err != nil {
			return err
		}
		if len(children) > 0 {
			return fmt.Errorf("%s is the parent of %s; --force removes it anyway", ref, strings.Join(children, ", "))
		}
	}
	if isURL(s.Root) {
		return fmt.Errorf("rm: only local stores are supported (got %s)", s.Root)
	}
	if n, ok := versionNumber(ref.Version); ok {
		if err := s.raiseLastVersion(ctx, ref.Name, n); err != nil {
			return err
		}
	}
	trash := s.join(ref.Name, trashDir, newID())
	if err := os.MkdirAll(filepath.Dir(trash), 0o755); err != nil {
		return fmt.Errorf("rm %s: %w", ref, err)
	}
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("rm %s: %w", ref, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("rm %s: removed as a version, but deleting its files failed (%s): %w", ref, trash, err)
	}
	os.Remove(filepath.Dir(trash)) // the trash, if now empty
	return nil
}

// Discard removes a staging directory after a failed run.
func (s Store) Discard(staging string) {
	if !isURL(s.Root) {
		endLease(staging)
		os.RemoveAll(staging)
	}
}

// Lock takes the dataset's lock (<name>/LockFile, created exclusively,
// holding the pid, host and time) for a run of it, waiting while another
// live run holds it; waiting, when set, is told once whom it waits for.
// A lock whose holder ran on this host and is gone, or that its holder
// has not renewed for LockStale (another host's crashed run), is broken.
// The returned function releases it. On an object store (gs://) the lock
// is an object created only if absent (see lockRemote); on a scheme
// without exclusive create Lock does nothing.
func (s Store) Lock(ctx context.Context, name string, waiting func(string)) (func(), error) {
	if isURL(s.Root) {
		return s.lockRemote(ctx, name, waiting)
	}
	file := s.join(name, LockFile)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	told := false
	for {
		mine := holder()
		f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, werr := f.WriteString(mine)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(file)
				return nil, fmt.Errorf("lock %s: %w", name, werr)
			}
			stop := make(chan struct{})
			go renew(file, stop, LeaseRenew)
			var once sync.Once
			return func() {
				once.Do(func() {
					close(stop)
					if data, err := os.ReadFile(file); err == nil && string(data) == mine {
						os.Remove(file)
					}
				})
			}, nil
		}
		if !os.IsExist(err) {
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		data, rerr := os.ReadFile(file)
		info, serr := os.Stat(file)
		if rerr != nil || serr != nil {
			continue // released meanwhile
		}
		h, ok := parseHolder(data)
		if (ok && h.gone()) || time.Since(info.ModTime()) > LockStale || (!ok && time.Since(info.ModTime()) > 10*time.Second) {
			// Break it, unless someone else broke it and locked meanwhile.
			if again, err := os.ReadFile(file); err == nil && string(again) == string(data) {
				os.Remove(file)
			}
			continue
		}
		if !told && waiting != nil {
			told = true
			who := "another run"
			if ok {
				who = fmt.Sprintf("another run (pid %d on %s since %s)", h.pid, h.host, h.since)
			}
			waiting(fmt.Sprintf("%s is locked by %s; waiting for it to finish (%s)", name, who, file))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// lockRemote is Lock on an object store: <name>/_lock is created only if
// absent (WriteExclusive) holding "PID HOST TIME", and rewritten with a
// fresh TIME every LeaseRenew while the run lives (objects have no mtime
// to touch). A lock whose holder ran on this host and is gone, whose TIME
// is older than LockStale (by this host's clock), or that cannot be
// parsed for 10 s, is broken: removed if it still holds what was read,
// then created again exclusively, so of two runs that break it at once
// one gets it.
func (s Store) lockRemote(ctx context.Context, name string, waiting func(string)) (func(), error) {
	file := s.join(name, LockFile)
	told := false
	var unparsed string
	var unparsedSince time.Time
	for {
		mine := holder()
		err := WriteExclusive(ctx, file, []byte(mine))
		if errors.Is(err, errors.ErrUnsupported) {
			return func() {}, nil // no exclusive create on this scheme: no lock
		}
		if err == nil {
			return remoteLockHeld(file, mine), nil
		}
		if !exists(err) {
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		data, rerr := ReadFile(ctx, file)
		if rerr == nil {
			h, ok := parseHolder(data)
			since, terr := time.Parse(time.RFC3339, h.since)
			stale := ok && (h.gone() || (terr == nil && time.Since(since) > LockStale))
			if !ok || terr != nil {
				if unparsed != string(data) {
					unparsed, unparsedSince = string(data), time.Now()
				}
				stale = time.Since(unparsedSince) > 10*time.Second
			}
			if stale {
				if again, err := ReadFile(ctx, file); err == nil && string(again) == string(data) {
					slog.Warn(fmt.Sprintf("breaking the stale lock %s (%s)", file, strings.TrimSpace(string(data))))
					Remove(ctx, file)
				}
				continue
			}
			if !told && waiting != nil {
				told = true
				who := "another run"
				if ok {
					who = fmt.Sprintf("another run (pid %d on %s, renewed %s)", h.pid, h.host, h.since)
				}
				waiting(fmt.Sprintf("%s is locked by %s; waiting for it to finish (%s)", name, who, file))
			}
		} // else released meanwhile, or unreadable: try again after a pause
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", name, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// remoteLockHeld renews a held remote lock every LeaseRenew, for as long
// as the object still holds what this run last wrote, and returns the
// function that stops renewing and removes it.
func remoteLockHeld(file, mine string) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(LeaseRenew)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			ctx := context.Background()
			cur, err := ReadFile(ctx, file)
			if err != nil || string(cur) != mine {
				return // broken by another run
			}
			next := holder()
			if WriteFile(ctx, file, []byte(next)) == nil {
				mine = next
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done // mine is this goroutine's alone from here
			ctx := context.Background()
			if data, err := ReadFile(ctx, file); err == nil && string(data) == mine {
				Remove(ctx, file)
			}
		})
	}
}

// LockStale is how long a lock may go unrenewed before another run
// breaks it (its holder renews it every LeaseRenew).
var LockStale = 10 * time.Minute

var lockPoll = 200 * time.Millisecond

// ReadManifest reads a committed version's manifest.
func (s Store) ReadManifest(ctx context.Context, name, version string) (*Manifest, error) {
	file := s.VersionDir(name, version) + "/" + ManifestFile
	rc, err := Open(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: no such version", name, version)
	}
	defer rc.Close()
	var m Manifest
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return nil, fmt.Errorf("%s@%s: bad manifest: %w", name, version, err)
	}
	return &m, nil
}

func copyTree(ctx context.Context, from, to string) error {
	files, err := List(ctx, strings.TrimRight(from, "/")+"/**")
	if err != nil {
		return err
	}
	for _, f := range files {
		rel := strings.TrimPrefix(f, strings.TrimRight(from, "/")+"/")
		if err := copyFile(ctx, f, to+"/"+rel); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies one file, across file systems too.
func copyFile(ctx context.Context, from, to string) error {
	r, err := Open(ctx, from)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := Create(ctx, to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return w.Close()
}

// WriteFile writes a whole file through its file system (FSFor).
func WriteFile(ctx context.Context, file string, data []byte) error {
	w, err := Create(ctx, file)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	return w.Close()
}
