package input

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/input/cloudtrail"
)

// DetectSize is how much of the start of an input Detect looks at.
const DetectSize = 1024

// DetectMax is the most Sniff reads ahead to find the end of the first
// line: a line longer than the longest accepted line (decode.DefaultMaxLine)
// would be rejected anyway.
const DetectMax = decode.DefaultMaxLine + 64<<10

// combinedLine matches the start of an nginx combined (or common) log
// line: address, ident, user, [time], "request", status, bytes.
var combinedLine = regexp.MustCompile(`^\S+ \S+ \S+ \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "[^"]*" \d{1,3} (?:\d+|-)`)

// Detectable lists the formats Detect and Sniff recognise, with what makes
// a line one of them (for the message asking for a format).
var Detectable = []struct{ Format, Rule string }{
	{FormatCloudTrail, `{"Records":[ or JSON lines with eventVersion, eventSource, eventName (or a message holding such a record)`},
	{FormatECS, `JSON lines with @timestamp and event.dataset`},
	{FormatNginxJSON, `JSON lines with remote_addr, status and request/request_uri/uri`},
	{FormatNginx, `lines of the combined or common log format`},
	{FormatOkta, `JSON lines with eventType, published and actor`},
	{FormatKeycloak, `JSON lines with time, realmId and type or operationType`},
	{FormatEntra, `JSON lines with createdDateTime and status, activityDateTime and activityDisplayName, category and properties, or records`},
	{FormatOCSF, `JSON lines with class_uid, activity_id and time`},
}

// Detect guesses the format of an input from its first bytes (up to
// DetectSize are used): "cloudtrail" for a file starting {"Records":[ or
// a JSON line with eventVersion, eventSource and eventName; "ecs" for a
// JSON line with @timestamp and event.dataset (nested or dotted);
// "nginx-json" for a JSON line with remote_addr, a request (request,
// request_uri or uri) and status; "nginx" for a line of the combined or
// common log format; the identity providers' formats by the members of
// Detectable. Every non-blank line must point to the same format;
// when they disagree, or a line is not recognised, ok is false and the
// caller should ask for a format. A last line cut short by the limit
// counts only when it is recognised (CloudTrail records are often longer
// than DetectSize). An empty input is not recognised.
func Detect(head []byte) (format string, ok bool) {
	if len(head) > DetectSize {
		head = head[:DetectSize]
	}
	format, why := detect(head, len(head) == DetectSize)
	return format, why == ""
}

// DetectError is the error of Sniff when it cannot tell the format: Why
// says what it saw, and the message names every format it tried and asks
// for one.
type DetectError struct {
	Why string
}

func (e *DetectError) Error() string {
	var b strings.Builder
	b.WriteString("cannot tell the input format: ")
	b.WriteString(e.Why)
	b.WriteString("; tried ")
	for i, d := range Detectable {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Format + " (" + d.Rule + ")")
	}
	b.WriteString("; give the format (--format, ?format=)")
	return b.String()
}

// Sniff recognises the format of the input br reads, by the rules of
// Detect, without consuming anything. It looks at DetectSize bytes and,
// while the first non-blank line is not complete in them, reads further
// (up to br.Size() bytes, DetectMax with the bufio.Reader Inputs.Sniff
// makes), so a first line of any accepted length is judged whole. An empty
// input is "ecs" (there is nothing to read in any format). When it cannot
// tell, the error is a *DetectError; a read error is returned as is.
func Sniff(br *bufio.Reader) (string, error) {
	n := DetectSize
	for {
		head, err := br.Peek(n)
		eof := err != nil
		if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) && len(head) < n {
			return "", err
		}
		trimmed := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
		complete := eof || bytes.IndexByte(trimmed, '\n') >= 0 || cloudtrail.IsRecordsFile(head)
		if complete || n >= br.Size() {
			if len(trimmed) == 0 && eof {
				return FormatECS, nil
			}
			format, why := detect(head, !eof)
			if why != "" {
				return "", &DetectError{Why: why}
			}
			return format, nil
		}
		n = min(n*4, br.Size())
	}
}

// Sniff wraps r in a bufio.Reader large enough for the longest accepted
// line and recognises its format with Sniff. Read the input from the
// returned reader: it still holds every byte.
func (in *Inputs) Sniff(r io.Reader) (string, io.Reader, error) {
	size := DetectMax
	if in.maxLine > 0 {
		size = in.maxLine + 64<<10
	}
	br := bufio.NewReaderSize(r, size)
	format, err := Sniff(br)
	return format, br, err
}

// detect implements Detect on head; truncated says head may end inside a
// line. why is empty when format is recognised, else it says why not.
func detect(head []byte, truncated bool) (format, why string) {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if cloudtrail.IsRecordsFile(head) {
		return FormatCloudTrail, ""
	}
	var got string
	gotLine := 0
	for lineNo := 1; len(head) > 0; lineNo++ {
		line, rest, found := bytes.Cut(head, []byte("\n"))
		head = rest
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		hits := detectLine(line)
		if !found && truncated {
			// A line cut short counts only when it is recognised.
			if len(hits) == 1 && got != "" && hits[0] != got {
				return "", fmt.Sprintf("line %d looks like %s, line %d like %s", gotLine, got, lineNo, hits[0])
			}
			if len(hits) == 1 {
				got = hits[0]
			}
			if got == "" {
				return "", fmt.Sprintf("line %d is longer than %d bytes and its start fits no format", lineNo, len(line))
			}
			break
		}
		switch {
		case len(hits) == 0:
			return "", fmt.Sprintf("line %d fits no format", lineNo)
		case len(hits) > 1:
			return "", fmt.Sprintf("line %d fits %s", lineNo, strings.Join(hits, " and "))
		case got != "" && hits[0] != got:
			return "", fmt.Sprintf("line %d looks like %s, line %d like %s", gotLine, got, lineNo, hits[0])
		}
		if got == "" {
			got, gotLine = hits[0], lineNo
		}
	}
	if got == "" {
		return "", "the input is empty"
	}
	return got, ""
}

// detectLine returns the formats line fits.
func detectLine(line []byte) []string {
	if line[0] != '{' {
		if combinedLine.Match(line) {
			return []string{FormatNginx}
		}
		return nil
	}
	keys := memberNames(line)
	var hits []string
	shipped := keys["message.eventVersion"] && keys["message.eventSource"] && keys["message.eventName"]
	if keys["eventVersion"] && keys["eventSource"] && keys["eventName"] || shipped {
		hits = append(hits, FormatCloudTrail)
	}
	if keys["@timestamp"] && keys["event.dataset"] && !shipped {
		hits = append(hits, FormatECS)
	}
	if keys["remote_addr"] && keys["status"] && (keys["request"] || keys["request_uri"] || keys["uri"]) {
		hits = append(hits, FormatNginxJSON)
	}
	if keys["eventType"] && keys["published"] && keys["actor"] {
		hits = append(hits, FormatOkta)
	}
	if keys["time"] && keys["realmId"] && (keys["type"] || keys["operationType"]) {
		hits = append(hits, FormatKeycloak)
	}
	if keys["createdDateTime"] && keys["status"] || keys["activityDateTime"] && keys["activityDisplayName"] ||
		keys["category"] && keys["properties"] && keys["time"] && keys["operationName"] || len(keys) == 1 && keys["records"] {
		hits = append(hits, FormatEntra)
	}
	if keys["class_uid"] && keys["activity_id"] && keys["time"] {
		hits = append(hits, FormatOCSF)
	}
	return hits
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
		if k == "message" && dec.PeekKind() == '"' {
			// Filebeat and Elastic Agent ship a CloudTrail record as the
			// string in "message": its members count as "message.NAME".
			tok, err := dec.ReadToken()
			if err != nil {
				break
			}
			if msg := strings.TrimLeft(tok.String(), " \t\r\n"); strings.HasPrefix(msg, "{") {
				for inner := range memberNames([]byte(msg)) {
					if !strings.Contains(inner, ".") {
						keys["message."+inner] = true
					}
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
