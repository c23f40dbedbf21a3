package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// manCmd prints the manual page. kong has no man page writer of its own,
// so manPage walks kong's model — the same one --help and completion read
// — and writes it as roff (man(7) macros): a command or flag added to the
// grammar is in the manual with no second place to keep.
type manCmd struct{}

func (manCmd) Run(e *env, kctx *kong.Context) error {
	return manPage(e.stdout, kctx.Model, Date)
}

// manPage writes app's manual page in section 1 to w. date (the
// revision's, may be empty) goes in the page's footer.
func manPage(w io.Writer, app *kong.Application, date string) error {
	var b strings.Builder
	name := app.Name
	if len(date) >= 10 {
		date = date[:10]
	}
	fmt.Fprintf(&b, ".TH %s 1 %s %s \"User Commands\"\n", strings.ToUpper(name), roffArg(date), roffArg(versionLine()))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", name, roffText(firstSentence(app.Help)))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]\n", name)
	b.WriteString(".SH DESCRIPTION\n")
	roffParagraphs(&b, app.Help)
	if app.Detail != "" {
		roffParagraphs(&b, app.Detail)
	}
	fmt.Fprintf(&b, ".PP\nEvery command takes the global options; \\fB%s COMMAND \\-\\-help\\fR prints a command's help.\n", name)
	b.WriteString(".SH GLOBAL OPTIONS\n")
	for _, f := range app.Flags {
		roffFlag(&b, f)
	}
	b.WriteString(".SH COMMANDS\n")
	for _, n := range app.Leaves(true) {
		fmt.Fprintf(&b, ".SS %s\n", roffArg(name+" "+n.Summary()))
		help := n.Help
		if n.Detail != "" {
			help += "\n\n" + n.Detail
		}
		roffParagraphs(&b, help)
		for _, p := range n.Positional {
			fmt.Fprintf(&b, ".TP\n\\fI%s\\fR\n%s\n", roffText(p.Summary()), roffText(oneLine(p.Help)))
		}
		// A command's own flags and those of its parent commands (not the
		// application's: GLOBAL OPTIONS has them).
		for p := n; p != nil && p.Type != kong.ApplicationNode; p = p.Parent {
			for _, f := range p.Flags {
				if !f.Hidden {
					roffFlag(&b, f)
				}
			}
		}
	}
	b.WriteString(`.SH FILES
.TP
.I ./haechi.yaml
The configuration read when \-\-config is not given, if it exists; every key, its default and its meaning are in haechi.example.yaml in the source tree.
.TP
.I ./haechi\-data
The embedded store (data_dir), with the audit key beside it.
.SH EXIT STATUS
0 on success, 1 when the command failed while running (an input could not be read, the store failed), 2 on bad usage or an invalid configuration.
.SH SEE ALSO
The README and docs/ in the source tree.
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// roffFlag writes a flag as a tagged paragraph.
func roffFlag(b *strings.Builder, f *kong.Flag) {
	if f.Hidden {
		return
	}
	head := "\\fB\\-\\-" + roffText(f.Name) + "\\fR"
	if f.Short != 0 {
		head = "\\fB\\-" + roffText(string(f.Short)) + "\\fR, " + head
	}
	if !f.IsBool() && !f.IsCounter() {
		head += "=\\fI" + roffText(f.FormatPlaceHolder()) + "\\fR"
	}
	help := oneLine(f.Help)
	if f.HasDefault && f.Default != "" {
		help += " (default: " + f.Default + ")"
	}
	if len(f.Envs) > 0 {
		help += " ($" + strings.Join(f.Envs, ", $") + ")"
	}
	fmt.Fprintf(b, ".TP\n%s\n%s\n", head, roffText(help))
}

// roffParagraphs writes text as paragraphs (split at blank lines).
func roffParagraphs(b *strings.Builder, text string) {
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if p = oneLine(p); p != "" {
			fmt.Fprintf(b, ".PP\n%s\n", roffText(p))
		}
	}
}

// oneLine joins text's lines with spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// firstSentence is s up to its first ". " (or all of it).
func firstSentence(s string) string {
	s = oneLine(s)
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// roffText escapes s (one line) as roff text: backslashes and hyphens
// escaped, characters beyond ASCII as \[uXXXX] (troff reads its input as
// Latin-1 unless a preprocessor converts it), and a leading period or
// quote kept from being read as a request.
func roffText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r > 0x7e || r < ' ':
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	s = b.String()
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffArg is s as one quoted argument of a request (.TH, .SS).
func roffArg(s string) string {
	return `"` + strings.ReplaceAll(roffText(oneLine(s)), `"`, `""`) + `"`
}
