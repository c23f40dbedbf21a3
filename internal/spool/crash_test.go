package spool

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	crashDirEnv = "HAECHI_SPOOL_CRASH_DIR"
	crashRunEnv = "HAECHI_SPOOL_CRASH_RUN"
)

// crashChild appends from several goroutines and prints "ack <first> <p>..."
// for every acknowledged Append, while a consumer commits what it read. The
// parent kills it with SIGKILL at a random moment.
func crashChild() {
	dir, run := os.Getenv(crashDirEnv), os.Getenv(crashRunEnv)
	s, err := Open(Options{Dir: dir, SegmentBytes: 4096})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	go func() { // consumer: commits every 20 records, keeping 1500 unreclaimed
		r, err := s.Reader(s.Committed() + 1)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child reader:", err)
			os.Exit(3)
		}
		for n := 1; ; n++ {
			off, _, err := r.Next(context.Background())
			if err != nil {
				fmt.Fprintln(os.Stderr, "child next:", err)
				os.Exit(3)
			}
			if n%20 == 0 && off > 1500 {
				if err := s.Commit(off - 1500); err != nil {
					fmt.Fprintln(os.Stderr, "child commit:", err)
					os.Exit(3)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				recs := make([][]byte, 1+i%3)
				for j := range recs {
					recs[j] = fmt.Appendf(nil, "%s.%d.%d.%d", run, g, i, j)
				}
				first, _, err := s.Append(context.Background(), recs...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				line := "ack " + strconv.FormatUint(first, 10)
				for _, r := range recs {
					line += " " + string(r)
				}
				out.Lock()
				os.Stdout.WriteString(line + "\n") // one write: a line is whole or absent
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		crashChild()
		return
	}
	if testing.Short() {
		t.Skip("crash test re-executes the test binary")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	acked := map[string]uint64{} // payload → offset
	for run := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRunEnv+"="+strconv.Itoa(run))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []string)
		go func() {
			var ls []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				ls = append(ls, sc.Text())
			}
			lines <- ls
		}()
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		ls := <-lines
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("child run %d did not die by SIGKILL: %v\n%s", run, err, stderr.String())
		}
		for _, l := range ls {
			f := strings.Fields(l)
			if len(f) < 3 || f[0] != "ack" {
				t.Fatalf("bad child line %q", l)
			}
			first, _ := strconv.ParseUint(f[1], 10, 64)
			for i, p := range f[2:] {
				acked[p] = first + uint64(i)
			}
		}
		t.Logf("run %d: %d lines acknowledged", run, len(ls))
	}
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged")
	}

	s := openT(t, Options{Dir: dir, SegmentBytes: 4096, NoSync: true})
	st := s.Stats()
	got := mustReadAll(t, s, st.FirstOffset)
	byPayload := map[string]uint64{}
	for _, r := range got {
		if prev, dup := byPayload[string(r.data)]; dup {
			t.Fatalf("%q stored twice, at %d and %d", r.data, prev, r.off)
		}
		byPayload[string(r.data)] = r.off
	}
	checked := 0
	for p, off := range acked {
		if off < st.FirstOffset {
			continue // processed and deleted
		}
		checked++
		if byPayload[p] != off {
			t.Fatalf("acknowledged %q at %d, spool has it at %d", p, off, byPayload[p])
		}
	}
	// Each writer's acknowledged records got increasing offsets, in its order.
	type ack struct {
		i, j int
		off  uint64
	}
	perWriter := map[string][]ack{}
	for p, off := range acked {
		f := strings.Split(p, ".")
		i, _ := strconv.Atoi(f[2])
		j, _ := strconv.Atoi(f[3])
		perWriter[f[0]+"."+f[1]] = append(perWriter[f[0]+"."+f[1]], ack{i, j, off})
	}
	for w, as := range perWriter {
		slices.SortFunc(as, func(a, b ack) int { return cmp.Or(cmp.Compare(a.i, b.i), cmp.Compare(a.j, b.j)) })
		for k := 1; k < len(as); k++ {
			if as[k].off <= as[k-1].off {
				t.Fatalf("writer %s: record %d.%d at %d after %d.%d at %d", w, as[k].i, as[k].j, as[k].off, as[k-1].i, as[k-1].j, as[k-1].off)
			}
		}
	}
	if st.Committed >= st.NextOffset {
		t.Fatalf("committed %d beyond end %d", st.Committed, st.NextOffset)
	}
	t.Logf("%d acknowledged records, %d still in the spool checked, %d stored, committed %d", len(acked), checked, len(got), st.Committed)
}
