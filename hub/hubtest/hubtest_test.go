package hubtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, u, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEndpointShapes(t *testing.T) {
	s := NewServer()
	defer s.Close()
	sha := s.Commit("o/n", "main", File{Path: "a/b.jsonl", Data: []byte("{}\n"), LFS: true}, File{Path: "top.json", Data: []byte("[]")})
	s.AddParquet("o/n", "default", "train", []byte("PAR1 0 PAR1"), []byte("PAR1 1 PAR1"))
	s.Gate("o/g", "tok")
	s.Commit("o/g", "main", File{Path: "x", Data: []byte("x")})

	resp, body := get(t, s.URL+"/api/datasets/o/n/revision/main", "")
	var rev struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	if json.Unmarshal([]byte(body), &rev) != nil || rev.SHA != sha || len(rev.Siblings) != 2 {
		t.Fatalf("revision: %d %s", resp.StatusCode, body)
	}
	// Non-recursive listing: the directory, not what is under it.
	_, body = get(t, s.URL+"/api/datasets/o/n/tree/main", "")
	if !strings.Contains(body, `"type":"directory"`) || strings.Contains(body, "b.jsonl") {
		t.Errorf("tree: %s", body)
	}
	// Path escaped whole, as huggingface_hub sends it.
	_, body = get(t, s.URL+"/api/datasets/o/n/tree/main/a%2F?recursive=true", "")
	if !strings.Contains(body, `"lfs":{"oid":"`) {
		t.Errorf("tree a/: %s", body)
	}
	_, body = get(t, s.URL+"/api/datasets/o/n/parquet", "")
	var all map[string]map[string][]string
	if json.Unmarshal([]byte(body), &all) != nil || len(all["default"]["train"]) != 2 ||
		all["default"]["train"][1] != s.URL+"/api/datasets/o/n/parquet/default/train/1.parquet" {
		t.Errorf("parquet: %s", body)
	}
	_, body = get(t, s.URL+"/api/datasets/o/n/parquet/default", "")
	if !strings.Contains(body, `"train":[`) {
		t.Errorf("parquet/default: %s", body)
	}
	resp, _ = get(t, s.URL+"/api/datasets/o/n/parquet/default/train/1.parquet", "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != s.URL+"/datasets/o/n/resolve/refs%2Fconvert%2Fparquet/default/train/0001.parquet" {
		t.Errorf("shard redirect: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(t, s.URL+"/datasets/o/n/resolve/main/a/b.jsonl", "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("X-Repo-Commit") != sha ||
		resp.Header.Get("X-Linked-Etag") != `"`+SHA256([]byte("{}\n"))+`"` || !strings.HasPrefix(resp.Header.Get("Location"), s.CDNURL) {
		t.Errorf("LFS resolve: %d %v", resp.StatusCode, resp.Header)
	}
	if r, _ := get(t, resp.Header.Get("Location"), "tok"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("CDN took an Authorization header: %d", r.StatusCode)
	}
	resp, body = get(t, s.URL+"/datasets/o/n/resolve/"+sha+"/top.json", "")
	if resp.StatusCode != 200 || body != "[]" || resp.Header.Get("ETag") != `"`+GitBlobID([]byte("[]"))+`"` {
		t.Errorf("git resolve: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	for tok, want := range map[string]int{"": 401, "bad": 403, "tok": 200} {
		if r, _ := get(t, s.URL+"/api/datasets/o/g/revision/main", tok); r.StatusCode != want || (want != 200 && r.Header.Get("X-Error-Code") != "GatedRepo") {
			t.Errorf("gated with %q: %d", tok, r.StatusCode)
		}
	}
	if r, _ := get(t, s.URL+"/api/datasets/o/missing/revision/main", ""); r.StatusCode != 404 || r.Header.Get("X-Error-Code") != "RepoNotFound" {
		t.Errorf("missing repo: %d", r.StatusCode)
	}
	if r, _ := get(t, s.URL+"/api/datasets/o/n/revision/nope", ""); r.StatusCode != 404 || r.Header.Get("X-Error-Code") != "RevisionNotFound" {
		t.Errorf("missing revision: %d", r.StatusCode)
	}
}
