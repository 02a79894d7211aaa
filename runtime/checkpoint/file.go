package checkpoint

import (
	"bufio"
	"fmt"
	"os"

	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
)

// beforeRename, when set by a test, runs after the temporary file is
// complete and before it is renamed over the checkpoint; an error it
// returns fails the Save.
var beforeRename func(tmp string) error

// Save writes ck to path atomically (internal/atomicfile): to a temporary
// file in path's directory, synced, then renamed over path, then the
// directory synced. A crash at any moment leaves at path either its
// previous content or the complete new checkpoint. On error the temporary
// file is removed and path is untouched. Save first removes temporary files
// that an interrupted Save to the same path left behind, so concurrent
// Saves to one path are not supported (the trainer holds the run
// directory's lock). A zero ck.Saved is recorded as the time now. Save does
// not modify ck.
func Save(path string, ck *Checkpoint) error {
	head, err := prepare(ck)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	atomicfile.RemoveStale(path)
	f, err := atomicfile.Create(path, 0o666)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	f.BeforeRename = beforeRename
	if err := write(f, ck, head); err != nil {
		f.Abort()
		return fmt.Errorf("checkpoint: save %s: write %s: %w", path, f.TempName(), err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	return nil
}

// Load reads and checks the checkpoint at path. A file that is truncated,
// damaged or not a checkpoint gives an error that says so and matches
// ErrCorrupt.
func Load(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("checkpoint: load %s: it is a directory; pass the checkpoint file", path)
	}
	return decode(bufio.NewReaderSize(f, bufSize), st.Size(), path)
}
