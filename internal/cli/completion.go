package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// Shell completion works as kongplete's (github.com/willabides/kongplete):
// the shell runs haechi itself with COMP_LINE (and COMP_POINT) set to the
// line being completed, and haechi prints the candidates, one a line, from
// its kong model. So completions never go stale: commands, flags and enum
// values are the binary's own. The scripts below only tell each shell to
// do so; `haechi completion bash|zsh|fish` prints them.

// completionScripts are the shells' fragments; {{bin}} is the quoted path
// of the binary and {{cmd}} the command's name.
var completionScripts = map[string]string{
	"bash": "complete -C {{bin}} {{cmd}}\n",
	"zsh":  "autoload -U +X bashcompinit && bashcompinit\ncomplete -C {{bin}} {{cmd}}\n",
	"fish": `function __complete_{{cmd}}
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    {{bin}}
end
complete -f -c {{cmd}} -a "(__complete_{{cmd}})"
`,
}

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
	Bin   string `placeholder:"PATH" help:"The haechi the shell runs for completions (default: this binary's absolute path)." predictor:"file"`
}

func (c *completionCmd) Run(e *env) error {
	bin := c.Bin
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("the path of this binary: %w (give --bin)", err)
		}
		if bin, err = filepath.Abs(exe); err != nil {
			return fmt.Errorf("the path of this binary: %w (give --bin)", err)
		}
	}
	_, err := fmt.Fprint(e.stdout, completionScript(c.Shell, "haechi", bin))
	return err
}

// completionScript is the script for shell (a key of completionScripts),
// completing cmd by running bin.
func completionScript(shell, cmd, bin string) string {
	return strings.NewReplacer("{{bin}}", shellQuote(bin), "{{cmd}}", cmd).Replace(completionScripts[shell])
}

// shellQuote quotes s as one word for bash, zsh and fish: as it is when
// it has only safe characters, else in single quotes, each single quote in
// it closing them, escaped with a backslash, and reopening them. That reads
// the same in all three shells except for a backslash, which fish reads as
// an escape inside single quotes too (a path with one is not supported for
// fish).
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// answerCompletion answers a shell's completion request (COMP_LINE set) from the
// parser's model and exits through the parser; without one it returns.
func answerCompletion(parser *kong.Kong) {
	if os.Getenv("COMP_LINE") == "" {
		return
	}
	kongplete.Complete(parser,
		kongplete.WithPredictor("file", complete.PredictFiles("*")),
		kongplete.WithPredictor("dir", complete.PredictDirs("*")),
	)
}
