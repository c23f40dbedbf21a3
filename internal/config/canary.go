package config

import (
	"fmt"
	"os"
	"strings"
)

// CanaryRecordIDs returns the canary record ids from
// detectors.canary.records followed by those in records_file, trimmed, with
// blank entries and duplicates dropped, first occurrence kept.
//
// In records_file each line holds one id; blank lines are skipped, and a #
// at the start of a line or after a space or tab starts a comment.
// It reads the file on every call and does not look at Enabled.
func (c Config) CanaryRecordIDs() ([]string, error) {
	cc := c.Detectors.Canary
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		id = strings.TrimSpace(id)
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range cc.Records {
		add(id)
	}
	if cc.RecordsFile == "" {
		return ids, nil
	}
	data, err := os.ReadFile(cc.RecordsFile)
	if err != nil {
		return nil, fmt.Errorf("detectors.canary.records_file: %w", err)
	}
	text := strings.TrimPrefix(string(data), "\ufeff") // a BOM some editors add
	for line := range strings.Lines(text) {
		add(stripComment(line))
	}
	return ids, nil
}

// stripComment cuts a # comment that starts a line or follows whitespace.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}
