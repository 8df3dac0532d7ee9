package recipe

import "testing"

// TestTopicsDefaults: a topics stage without max_fit_samples or field
// gets the documented defaults (20000, prompt); validation runs before
// defaults are applied (see SelfInstruct.validate), which refused it
// ("max_fit_samples: must be in [2, 1000000], got 0").
func TestTopicsDefaults(t *testing.T) {
	r, err := Parse("r.yaml", []byte("name: x\nsources: [{name: a, path: p}]\nstages:\n  - topics: {k: 0, seed: 1}\n  - topics\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range r.Stages {
		c := st.Config.(*Topics)
		if c.MaxFitSamples != 20000 || c.Field != "prompt" {
			t.Errorf("topics defaults: %+v", c)
		}
	}
}
