package graphs

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestIdentityOfEarlierConfigurations pins the identities of the default
// set as they were before Config.Shards existed: checkpoints written then
// must still resume.
func TestIdentityOfEarlierConfigurations(t *testing.T) {
	want := map[string]string{
		"resnet18-cifar-32px-n128-p64-t0.5":     "2906033a6820f623",
		"resnet18-imagenet-224px-n128-p64-t0.5": "c02a5bb9ce79cde1",
		"resnet50-cifar-32px-n128-p64-t0.5":     "ae1ca4757071edad",
		"resnet50-imagenet-224px-n128-p64-t0.5": "0d0222fb5e11727c",
	}
	for _, c := range Default() {
		m, _, _, ok, err := Lookup(c)
		if err != nil || !ok {
			t.Fatalf("%s: not in the default set: %v", c.Name(), err)
		}
		if got := m.Identity(); got != want[c.Name()] {
			t.Errorf("%s: identity %s, want %s", c.Name(), got, want[c.Name()])
		}
		sharded := *m
		sharded.Config.Shards = 2
		if sharded.Identity() == m.Identity() {
			t.Errorf("%s: two shards have the identity of one", c.Name())
		}
	}
}

func TestShards(t *testing.T) {
	base := Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 8}
	for _, c := range []struct {
		shards    int
		pairs     int
		name      string
		count     int
		stored    int
		invalid   string
		jsonField bool
	}{
		{shards: 0, pairs: 8, name: "resnet18-cifar-16px-n8-p64-t0.5", count: 1, stored: 0},
		{shards: 1, pairs: 8, name: "resnet18-cifar-16px-n8-p64-t0.5", count: 1, stored: 0},
		{shards: 2, pairs: 8, name: "resnet18-cifar-16px-n8-p64-t0.5-shards2", count: 2, stored: 2, jsonField: true},
		{shards: 3, pairs: 8, invalid: "do not split into 3 equal shards"},
		{shards: -1, pairs: 8, invalid: "shards -1 must be positive"},
	} {
		cfg := base
		cfg.Shards, cfg.Pairs = c.shards, c.pairs
		cfg = cfg.Defaults()
		err := cfg.Validate()
		if c.invalid != "" {
			if err == nil || !strings.Contains(err.Error(), c.invalid) {
				t.Errorf("shards %d: error %v, want one saying %q", c.shards, err, c.invalid)
			}
			continue
		}
		if err != nil {
			t.Errorf("shards %d: %v", c.shards, err)
			continue
		}
		if cfg.Name() != c.name || cfg.ShardCount() != c.count || cfg.Shards != c.stored {
			t.Errorf("shards %d: name %s, count %d, stored %d; want %s, %d, %d", c.shards, cfg.Name(), cfg.ShardCount(), cfg.Shards, c.name, c.count, c.stored)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(b), `"shards"`); got != c.jsonField {
			t.Errorf("shards %d: JSON %s has a shards field: %v, want %v", c.shards, b, got, c.jsonField)
		}
	}
}

func TestDistributedEquivalent(t *testing.T) {
	rank := Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 4, BNGroups: 2}.Defaults()
	for _, c := range []struct {
		world  int
		pairs  int
		shards int
	}{{1, 4, 0}, {2, 8, 2}, {4, 16, 4}} {
		d := &Distributed{Manifest: Manifest{Config: rank}, World: c.world}
		eq := d.Equivalent()
		if eq.Pairs != c.pairs || eq.Shards != c.shards || eq.BNGroups != 2 {
			t.Errorf("world %d: equivalent %+v, want %d pairs in %d shards, 2 BatchNorm groups", c.world, eq, c.pairs, c.shards)
		}
		if err := eq.Validate(); err != nil {
			t.Errorf("world %d: %v", c.world, err)
		}
	}
	if got, want := DistributedName(rank, 2), "resnet18-cifar-16px-n4-p64-t0.5-bng2-world2"; got != want {
		t.Errorf("DistributedName = %s, want %s", got, want)
	}
}
