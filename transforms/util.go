package transforms

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
)

func init() {
	register.Function3x0(splitTaggedFn)
}

// splitTagged separates strings tagged "D…" (dead letters) from "R…"
// (reports), stripping the tag.
func splitTagged(s beam.Scope, col beam.PCollection) (dead, reports beam.PCollection) {
	return beam.ParDo2(s.Scope("SplitTagged"), splitTaggedFn, col)
}

func splitTaggedFn(v string, dead, report func(string)) {
	switch v[0] {
	case 'D':
		dead(v[1:])
	default:
		report(v[1:])
	}
}
