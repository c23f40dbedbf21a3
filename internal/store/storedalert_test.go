package store

import (
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// fill sets every exported field of v (a pointer) to a random value, so
// that a field the store starts keeping and StoredAlert does not copy
// shows as a difference. Strings draw on texts that JSON escapes, and —
// with oddText — on invalid UTF-8 and NUL; floats on NaN and, with
// oddFloat, infinities and negative zero; times on the zero time, the
// epoch, zones and monotonic readings.
func fill(r *rand.Rand, v reflect.Value, oddText, oddFloat bool) {
	texts := []string{"", "alice", "<b>&amp;</b>", "line\nbreak\t\"q\"", "\u2028\u2029", "héllo ☃", `\u0000`}
	if oddText {
		texts = append(texts, "bad\xffutf8", "nul\x00byte")
	}
	floats := []float64{0, 1, -2.5, 77.125, 1e300, 5e-324, math.NaN()}
	if oddFloat {
		floats = append(floats, math.Inf(1), math.Inf(-1), math.Copysign(0, -1))
	}
	switch v.Kind() {
	case reflect.Pointer:
		fill(r, v.Elem(), oddText, oddFloat)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			zones := []*time.Location{time.UTC, time.FixedZone("X", 5*3600+1800), time.Local}
			ts := []time.Time{{}, time.Unix(0, 0), time.Date(2025, 6, 2, 3, 4, 5, 6, zones[r.IntN(3)]), time.Now()}
			v.Set(reflect.ValueOf(ts[r.IntN(len(ts))]))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(r, v.Field(i), oddText, oddFloat)
			}
		}
	case reflect.Slice:
		if r.IntN(4) == 0 {
			v.SetZero()
			return
		}
		n := r.IntN(4)
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fill(r, v.Index(i), oddText, oddFloat)
		}
	case reflect.String:
		v.SetString(texts[r.IntN(len(texts))])
	case reflect.Float32, reflect.Float64:
		v.SetFloat(floats[r.IntN(len(floats))])
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(r.IntN(300)) - 50)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(r.IntN(250)))
	default:
		panic(fmt.Sprintf("fill: %s", v.Type()))
	}
}

// TestStoredAlertEqualsReadBack: what StoredAlert returns for an alert is
// what the store reads back once the alert is saved, value for value
// (reflect.DeepEqual) — random alerts with every field set, findings and
// their slices empty, nil or full, NaN scores, zones, monotonic readings,
// text JSON escapes — and it declines what it does not reproduce
// (invalid UTF-8, NUL, infinities, negative zeros; SQLite only, as
// PostgreSQL refuses such text).
func TestStoredAlertEqualsReadBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		r := rand.New(rand.NewPCG(38, 1))
		odd := b.name == "sqlite" // PostgreSQL refuses invalid UTF-8 and NUL
		var exact, declined int
		for i := range 300 {
			var a event.Alert
			fill(r, reflect.ValueOf(&a), odd && i%3 == 0, i%3 == 1)
			if i%3 == 1 && r.IntN(2) == 0 { // odd figures only: still exact
				a.Score, a.Risk = 1, 2
				for j := range a.Findings {
					a.Findings[j].Score, a.Findings[j].Contribution = 3, 4
				}
			}
			a.ID = fmt.Sprintf("al-%d", i)
			if math.IsNaN(a.Risk) { // risk is NOT NULL: such an alert is not saved
				a.Risk = 3
			}
			for j := range a.Findings { // and so is a finding's contribution
				if math.IsNaN(a.Findings[j].Contribution) {
					a.Findings[j].Contribution = 4
				}
			}
			if err := s.SaveAlerts(t.Context(), []event.Alert{a}); err != nil {
				t.Fatalf("alert %d: %v", i, err)
			}
			var back []event.Alert
			err := s.writeTx(t.Context(), func(tx *sql.Tx) error {
				var err error
				back, err = (&IncidentTx{s: s, tx: tx}).Alerts(t.Context(), []string{a.ID})
				return err
			})
			if err != nil || len(back) != 1 {
				t.Fatalf("alert %d: read back %d: %v", i, len(back), err)
			}
			got, ok := StoredAlert(&a)
			if !ok {
				declined++
				continue
			}
			exact++
			if !reflect.DeepEqual(got, back[0]) {
				t.Fatalf("alert %d: StoredAlert differs from the alert read back:\n got %#v\nwant %#v", i, got, back[0])
			}
		}
		if exact < 100 {
			t.Fatalf("%d alerts exact, %d declined: too few exact", exact, declined)
		}
		if declined == 0 {
			t.Fatal("nothing declined")
		}
	})
}
