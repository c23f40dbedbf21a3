//go:build !unix

package spool

import (
	"fmt"
	"io"
	"os"
)

// lockFile on systems without flock creates name exclusively; a stale lock
// file left by a crash must be removed by hand.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return nil, fmt.Errorf("%w: %s exists", ErrLocked, name)
		}
		return nil, err
	}
	return removeOnClose{f}, nil
}

type removeOnClose struct{ f *os.File }

func (r removeOnClose) Close() error {
	err := r.f.Close()
	if rerr := os.Remove(r.f.Name()); err == nil {
		err = rerr
	}
	return err
}
