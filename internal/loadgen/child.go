package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// childEnv names the server a benchmark's child process runs.
const childEnv = "HAECHI_LOADGEN_CHILD"

// Child is a server running in a child process: the test binary itself,
// re-executed to run one test function (the child's side: ChildMode,
// Announce, WaitParent), so that its CPU time is its own.
type Child struct {
	Addr string // what the child announced
	PID  int
	cmd  *exec.Cmd
	in   io.WriteCloser
}

// StartChild re-executes the running test binary with -test.run=^test$
// and mode in the environment, and waits (up to a minute) for the line
// the child announces.
func StartChild(test, mode string, env ...string) (*Child, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1") // #nosec G204 G702 -- the test binary itself, run again as a child
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("loadgen: child: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loadgen: child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: child: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "loadgen-addr "); ok {
				line <- a
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(line)
	}()
	c := &Child{PID: cmd.Process.Pid, cmd: cmd, in: in}
	select {
	case a, ok := <-line:
		if ok {
			c.Addr = a
			return c, nil
		}
	case <-time.After(time.Minute):
	}
	_ = c.Stop()
	return nil, errors.New("loadgen: the child announced no address")
}

// CPU is the child's CPU time so far (ProcessCPU).
func (c *Child) CPU() (time.Duration, error) { return ProcessCPU(c.PID) }

// Stop closes the child's stdin (WaitParent returns) and waits for it.
func (c *Child) Stop() error {
	_ = c.in.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		return <-done
	}
}

// ChildMode is the mode StartChild gave this process ("" when it is not
// a child).
func ChildMode() string { return os.Getenv(childEnv) }

// Announce tells the parent the child's address.
func Announce(addr string) { fmt.Printf("loadgen-addr %s\n", addr) }

// WaitParent blocks until the parent stops the child.
func WaitParent() { _, _ = io.Copy(io.Discard, os.Stdin) }
