package cli

import (
	"fmt"
	"strings"
)

// outputFlag is the one output-format flag of every command that prints
// records: -o/--output FORMAT. A command embeds it and names its formats,
// the default first, with kong's set tags:
//
//	outputFlag `kong:"embed,set='output_formats=table,json,csv',set='output_default=table'"`
//
// kong checks the value against them (and the help and completion list
// them); adding a format to a command is adding it there and to the switch
// that writes it. Read the choice with format.
//
// JSON is the --json switch of earlier releases, kept hidden for one
// release: it selects json and says so on stderr.
type outputFlag struct {
	Output string `short:"o" name:"output" enum:"${output_formats}" default:"${output_default}" placeholder:"FORMAT" help:"Output format: ${output_formats} (default ${output_default})."`
	JSON   bool   `name:"json" hidden:"" help:"Deprecated: -o json."`
}

// format returns the chosen format: --output, or json with the deprecated
// --json (noted on stderr).
func (o outputFlag) format(e *env) string {
	if o.JSON {
		deprecated(e, "--json", "-o json")
		return "json"
	}
	return o.Output
}

// deprecated notes on stderr that an old flag was used and what replaces
// it. The old flags stay for one release.
func deprecated(e *env, old, use string) {
	fmt.Fprintf(e.stderr, "haechi: %s is deprecated and goes in the next release: use %s\n", old, use)
}

// outputHint explains a refused -o value that names a file, as -o did in
// report and simulate before it named the output format everywhere; ""
// for any other parse error.
func outputHint(err error) string {
	msg := err.Error()
	_, got, ok := strings.Cut(msg, "--output must be one of ")
	if !ok {
		return ""
	}
	if _, v, ok := strings.Cut(got, " but got "); ok && strings.ContainsAny(v, "./") {
		return "-o names the output format; write to a file with --out FILE"
	}
	return ""
}
