package datasets

import (
	"strings"
	"testing"
)

// TestFunnelTableChanges: redaction counts are not printed as records.
func TestFunnelTableChanges(t *testing.T) {
	f := Funnel{Read: 100, Written: 90, Stages: []StageFunnel{{
		Stage: "pii", In: 100, Out: 90,
		Dropped:  []Count{{"pii.found", 10}},
		Modified: []Count{{"pii.phone", 1234}},
	}}}
	var b strings.Builder
	if err := f.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	if !strings.HasSuffix(strings.TrimSpace(lines[0]), "changes") {
		t.Errorf("no changes column: %q", lines[0])
	}
	for _, l := range lines {
		if strings.Contains(l, "pii.phone") {
			// The count stands in the last column, the records column is empty.
			if fields := strings.Fields(l); len(fields) != 3 || fields[2] != "1234" || strings.Index(l, "1234") < len(lines[0])-len("changes")-1 {
				t.Errorf("pii.phone row %q", l)
			}
		}
	}
	if !strings.Contains(out, "not records") {
		t.Errorf("no note under the table:\n%s", out)
	}
	// Without changes the table has four columns, as before.
	f.Stages[0].Modified = nil
	b.Reset()
	_ = f.WriteTable(&b)
	if strings.Contains(b.String(), "changes") {
		t.Errorf("changes column without changes:\n%s", b.String())
	}
}
