package behaviour

import (
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// A busy hour's scratch (the role's open list and the vectors of the hour
// being closed) is not kept once the hour has closed: it is not live
// state, and would hold memory sized by the busiest hour ever.
func TestBusyHourScratchReleased(t *testing.T) {
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	s := New(Options{Model: true}).NewShard().(*shard)
	c := engine.NewTestContext(0, 1)
	key := event.EntityKey{Kind: EntityRole, ID: "support"}
	read := func(who string, at time.Time) {
		s.Process(c, key, &event.Event{Time: at, Dataset: event.DatasetGateway, Action: "read",
			User: event.User{ID: who, Roles: []string{"support"}}, Records: event.Records{Type: "customer", IDs: []string{"1"}}})
	}
	for i := range 500 {
		read("e:"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second))
	}
	read("e:closer", t0.Add(2*time.Hour)) // closes the busy hour
	r := s.roles["support"]
	if cap(r.pending) > maxScratch || cap(r.open) > maxScratch {
		t.Errorf("after the busy hour: pending cap %d, open cap %d; want at most %d", cap(r.pending), cap(r.open), maxScratch)
	}
	if len(r.ids) != 501 {
		t.Errorf("%d identities, want 501: the learnt state stays", len(r.ids))
	}
}
