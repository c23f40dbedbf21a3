package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// ScorecardFile is where, in the data dir, the last eval or demo
// scorecard is kept for the console.
const ScorecardFile = "scorecard.json"

// SavedScorecard is the stored form of the last scorecard: what produced
// it and the scorecard itself in the JSON form of `haechi eval -o json`
// (package eval's Scorecard; the console reads the part it shows through
// Scorecard, since eval runs the pipeline and cannot be imported here).
type SavedScorecard struct {
	// Source says what produced it: "demo" or "eval".
	Source string `json:"source"`
	// Saved is when it was written.
	Saved time.Time `json:"saved"`
	// Note describes the run (seed, days, customers or the files scored).
	Note      string          `json:"note,omitempty"`
	Scorecard json.RawMessage `json:"scorecard"`
}

// Scorecard is the part of eval's scorecard JSON the console shows.
type Scorecard struct {
	Scenarios []struct {
		Name                            string     `json:"name"`
		Detected                        bool       `json:"detected"`
		TimeToDetectSeconds             *float64   `json:"time_to_detect_seconds"`
		RecordsExposedBeforeContainment int        `json:"records_exposed_before_containment"`
		RecordsExposedBeforeDetection   int        `json:"records_exposed_before_detection"`
		ContainedAt                     *time.Time `json:"contained_at"`
		ContainedBy                     string     `json:"contained_by"`
		RecordsTouched                  int        `json:"records_touched"`
		Alerts                          []struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"alerts"`
	} `json:"scenarios"`
	FalsePositives struct {
		PerTenKIdentitiesPerDay float64 `json:"per_10k_identities_per_day"`
		Ordinary                int     `json:"ordinary"`
		HardBenign              struct {
			Alerts                  int     `json:"alerts"`
			PerTenKIdentitiesPerDay float64 `json:"per_10k_identities_per_day"`
		} `json:"hard_benign"`
	} `json:"false_positives"`
	Events     int64   `json:"events"`
	Identities int     `json:"identities"`
	Days       float64 `json:"days"`
	Alerts     int     `json:"alerts"`
	Response   bool    `json:"response"`
}

// NewSavedScorecard wraps a scorecard (anything that marshals to eval's
// Scorecard JSON) for SaveScorecard.
func NewSavedScorecard(source, note string, sc any, now time.Time) (SavedScorecard, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return SavedScorecard{}, fmt.Errorf("scorecard: %w", err)
	}
	return SavedScorecard{Source: source, Saved: now.UTC(), Note: note, Scorecard: b}, nil
}

// SaveScorecard writes s to dir/scorecard.json, atomically (a console
// reading it meanwhile sees the old or the new one, never half).
func SaveScorecard(dir string, s SavedScorecard) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("save scorecard: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save scorecard: %w", err)
	}
	f, err := os.CreateTemp(dir, ".scorecard-*.json")
	if err != nil {
		return fmt.Errorf("save scorecard: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save scorecard: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save scorecard: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, ScorecardFile)); err != nil {
		return fmt.Errorf("save scorecard: %w", err)
	}
	return nil
}

// LoadScorecard reads dir/scorecard.json; ok is false when there is none.
func LoadScorecard(dir string) (s SavedScorecard, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ScorecardFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read scorecard: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("read scorecard %s: %w", filepath.Join(dir, ScorecardFile), err)
	}
	return s, true, nil
}

type scorecardView struct {
	Saved SavedScorecard
	Card  Scorecard
	Have  bool
	Err   string
}

func (c *Console) scorecard(w http.ResponseWriter, r *http.Request) {
	var v scorecardView
	var err error
	if c.opts.DataDir != "" {
		v.Saved, v.Have, err = LoadScorecard(c.opts.DataDir)
		if err == nil && v.Have {
			if err = json.Unmarshal(v.Saved.Scorecard, &v.Card); err != nil {
				v.Have = false
				err = fmt.Errorf("read scorecard: %w", err)
			}
		}
		if err != nil {
			v.Err = err.Error()
		}
	}
	c.render(w, r, http.StatusOK, "scorecard", view{Title: "Scorecard", Nav: "scorecard", Data: v})
}
