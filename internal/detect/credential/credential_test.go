package credential_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/credential"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
)

// stolen: an instance role's key used from a new address (one finding,
// about the key, naming the source); a service call without an address and
// gateway tokens are not judged. quiet: a developer key roaming over
// networks is reported for networks 2–4 and then no more.
func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{credential.New(credential.Options{})}
	})
}
