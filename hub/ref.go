package hub

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// DefaultRevision is the revision read when a Ref names none.
const DefaultRevision = "main"

// ParquetRevision is the branch the dataset viewer publishes a dataset's
// Parquet conversion to.
const ParquetRevision = "refs/convert/parquet"

// Ref names files of a dataset repo on the Hub.
type Ref struct {
	// Repo is "OWNER/NAME".
	Repo string
	// Revision is a branch, tag or commit sha, unescaped
	// ("refs/convert/parquet"); "" means DefaultRevision.
	Revision string
	// Glob is a path pattern inside the repo: path.Match syntax within a
	// segment, and "**" for any number of segments. A pattern without
	// wildcards names a file or a directory (all files under it). ""
	// means the whole repo (or, for a source, that a config and split are
	// given separately).
	Glob string
}

// specialRef matches revisions that contain slashes and may be written
// unescaped, as huggingface_hub allows.
var specialRef = regexp.MustCompile(`^refs/(convert/\w+|pr/\d+)(/|$)`)

// ParseURL parses hf://datasets/OWNER/NAME[@REVISION][/PATH-GLOB]. The
// revision may be URL-escaped (refs%2Fconvert%2Fparquet); refs/convert/X and
// refs/pr/N may also be written as they are.
func ParseURL(u string) (Ref, error) {
	const scheme = "hf://"
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("hub: bad source %q: %s (want hf://datasets/OWNER/NAME[@REVISION][/PATH-GLOB])", u, why)
	}
	if !strings.HasPrefix(u, scheme) {
		return bad("not an hf:// URL")
	}
	rest := u[len(scheme):]
	kind, rest, _ := strings.Cut(rest, "/")
	if kind != "datasets" {
		return bad("only dataset repos (hf://datasets/...) are supported")
	}
	owner, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no dataset name")
	}
	name, tail := rest, ""
	if i := strings.IndexAny(rest, "@/"); i >= 0 {
		name, tail = rest[:i], rest[i:]
	}
	ref := Ref{Repo: owner + "/" + name}
	if err := checkRepo(ref.Repo); err != nil {
		return bad(err.Error())
	}
	if strings.HasPrefix(tail, "@") {
		tail = tail[1:]
		rev := tail
		if m := specialRef.FindString(tail); m != "" {
			rev, tail = strings.TrimSuffix(m, "/"), tail[len(strings.TrimSuffix(m, "/")):]
		} else if j := strings.IndexByte(tail, '/'); j >= 0 {
			rev, tail = tail[:j], tail[j:]
		} else {
			tail = ""
		}
		r, err := url.PathUnescape(rev)
		if err != nil || r == "" {
			return bad("empty or badly escaped revision")
		}
		ref.Revision = r
	}
	if ref.Glob = strings.Trim(tail, "/"); ref.Glob != "" {
		if err := checkGlob(ref.Glob); err != nil {
			return bad(err.Error())
		}
	}
	return ref, nil
}

// String formats r as an hf:// URL, escaping the revision, so that
// ParseURL(r.String()) == r.
func (r Ref) String() string {
	s := "hf://datasets/" + r.Repo
	if r.Revision != "" {
		s += "@" + url.PathEscape(r.Revision)
	}
	if r.Glob != "" {
		s += "/" + r.Glob
	}
	return s
}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 96 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkRepo checks that repo is OWNER/NAME.
func checkRepo(repo string) error {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || !validName(owner) || !validName(name) {
		return fmt.Errorf("repo %q is not OWNER/NAME", repo)
	}
	return nil
}

func checkGlob(g string) error {
	for _, seg := range strings.Split(g, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path %q has an empty, . or .. segment", g)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("path %q: bad pattern %q", g, seg)
		}
	}
	return nil
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// globDir is the directory to list for glob: its leading segments without
// wildcards, less the last segment (which may name a file).
func globDir(glob string) string {
	segs := strings.Split(glob, "/")
	var lit []string
	for _, s := range segs[:len(segs)-1] {
		if hasMeta(s) {
			break
		}
		lit = append(lit, s)
	}
	return strings.Join(lit, "/")
}

// matchGlob reports whether the repo path name matches glob. A glob
// without wildcards also matches every file under it, as a directory.
func matchGlob(glob, name string) bool {
	if !hasMeta(glob) {
		return name == glob || strings.HasPrefix(name, glob+"/")
	}
	return matchSegs(strings.Split(glob, "/"), strings.Split(name, "/"))
}

func matchSegs(p, n []string) bool {
	for len(p) > 0 {
		if p[0] == "**" {
			p = p[1:]
			if len(p) == 0 {
				return len(n) > 0
			}
			for i := 0; i <= len(n); i++ {
				if matchSegs(p, n[i:]) {
					return true
				}
			}
			return false
		}
		if len(n) == 0 {
			return false
		}
		if ok, _ := path.Match(p[0], n[0]); !ok {
			return false
		}
		p, n = p[1:], n[1:]
	}
	return len(n) == 0
}
