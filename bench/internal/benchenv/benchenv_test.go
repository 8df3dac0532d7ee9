package benchenv

import (
	"encoding/json"
	"testing"
)

func TestOrderedKeepsChosenKeysFirst(t *testing.T) {
	b, err := json.Marshal(Ordered(map[string]any{"z": 1, "bench": "x", "a": []int{2}, "value": 3.5}, "bench", "value", "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"bench":"x","value":3.5,"a":[2],"z":1}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
