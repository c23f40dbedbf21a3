package input

import (
	"bytes"
	"regexp"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/input/cloudtrail"
)

// DetectSize is how much of the start of an input Detect looks at.
const DetectSize = 1024

// combinedLine matches the start of an nginx combined (or common) log
// line: address, ident, user, [time], "request", status, bytes.
var combinedLine = regexp.MustCompile(`^\S+ \S+ \S+ \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "[^"]*" \d{1,3} (?:\d+|-)`)

// Detect guesses the format of an input from its first bytes (up to
// DetectSize are used): "cloudtrail" for a file starting {"Records":[ or
// a JSON line with eventVersion, eventSource and eventName; "ecs" for a
// JSON line with @timestamp and event.dataset (nested or dotted);
// "nginx-json" for a JSON line with remote_addr, a request (request,
// request_uri or uri) and status; "nginx" for a line of the combined or
// common log format. Every non-blank line must point to the same format;
// when they disagree, or a line is not recognised, ok is false and the
// caller should ask for a format. A last line cut short by the limit
// counts only when it is recognised (CloudTrail records are often longer
// than DetectSize).
func Detect(head []byte) (format string, ok bool) {
	if len(head) > DetectSize {
		head = head[:DetectSize]
	}
	truncated := len(head) == DetectSize
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if cloudtrail.IsRecordsFile(head) {
		return FormatCloudTrail, true
	}
	var got string
	for len(head) > 0 {
		line, rest, found := bytes.Cut(head, []byte("\n"))
		head = rest
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		f := detectLine(line)
		if !found && truncated {
			// A line cut short counts only when it is recognised.
			if f != "" && got != "" && f != got {
				return "", false
			}
			if f != "" {
				got = f
			}
			break
		}
		if f == "" || (got != "" && f != got) {
			return "", false
		}
		got = f
	}
	return got, got != ""
}

func detectLine(line []byte) string {
	if line[0] != '{' {
		if combinedLine.Match(line) {
			return FormatNginx
		}
		return ""
	}
	keys := memberNames(line)
	var hits []string
	if keys["eventVersion"] && keys["eventSource"] && keys["eventName"] {
		hits = append(hits, FormatCloudTrail)
	}
	if keys["@timestamp"] && keys["event.dataset"] {
		hits = append(hits, FormatECS)
	}
	if keys["remote_addr"] && keys["status"] && (keys["request"] || keys["request_uri"] || keys["uri"]) {
		hits = append(hits, FormatNginxJSON)
	}
	if len(hits) != 1 {
		return ""
	}
	return hits[0]
}

// memberNames returns the names of the members of the JSON object in line,
// with those of a nested "event" object as "event.NAME". It reads as far
// as the line is well-formed, so a line cut short still tells something.
func memberNames(line []byte) map[string]bool {
	keys := map[string]bool{}
	dec := jsontext.NewDecoder(bytes.NewReader(line), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return keys
	}
	for len(keys) < 1000 {
		name, err := dec.ReadToken()
		if err != nil || name.Kind() != '"' {
			break
		}
		k := name.String()
		keys[k] = true
		if k == "event" && dec.PeekKind() == '{' {
			dec.ReadToken()
			for {
				inner, err := dec.ReadToken()
				if err != nil || inner.Kind() != '"' {
					break
				}
				keys["event."+inner.String()] = true
				if dec.SkipValue() != nil {
					return keys
				}
			}
			continue
		}
		if dec.SkipValue() != nil {
			break
		}
	}
	return keys
}
