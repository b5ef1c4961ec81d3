package raftstorage

import (
	"encoding/binary"
	"fmt"
)

// Key layout. Every key raftkv writes into a store's engine is either a
// local key, private to one peer of the store, or a data key, holding user
// data. Local keys start with LocalPrefix (0x01) and data keys with
// DataPrefix ('z', 0x7a), so all local keys sort before all data keys and a
// scan of user data never meets raft state. Integers are 8-byte big-endian,
// so keys of one region sort by index.
//
//	raft log entry    0x01 'r' regionID(8) 0x01 index(8)  -> raftpb.Entry
//	raft local state  0x01 'r' regionID(8) 0x02           -> raftkvpb.RaftLocalState
//	apply state       0x01 'r' regionID(8) 0x03           -> raftkvpb.RaftApplyState
//	region state      0x01 's' regionID(8)                -> raftkvpb.RegionLocalState
//	store identity    0x01 'i'                            -> raftkvpb.StoreIdent
//	data              'z' userKey                         -> user value
//
// The store identity is the one local key of the store rather than of a
// peer: the cluster id and store id of the store the engine belongs to,
// written the first time a store starts on the engine (store.New) and
// checked at every start after, so that an engine is never run as
// another store or in another cluster.
//
// Values are protobuf encodings (proto.Marshal) of the named messages;
// data values are stored as the user gave them. docs/formats/raftkv-keys.md
// has the same table with worked examples.
const (
	// LocalPrefix starts every local (per-peer, non-user) key.
	LocalPrefix byte = 0x01
	// DataPrefix starts every data key: DataKey(k) = 'z' + k.
	DataPrefix byte = 'z'

	raftPrefix        byte = 'r'
	regionStatePrefix byte = 's'
	storeIdentPrefix  byte = 'i'

	raftLogSuffix    byte = 0x01
	raftStateSuffix  byte = 0x02
	applyStateSuffix byte = 0x03
)

const (
	regionPrefixLen = 2 + 8                   // 0x01 'r' regionID
	entryKeyLen     = regionPrefixLen + 1 + 8 // + 0x01 index
)

func regionRaftPrefix(regionID uint64) []byte {
	k := make([]byte, regionPrefixLen, entryKeyLen)
	k[0], k[1] = LocalPrefix, raftPrefix
	binary.BigEndian.PutUint64(k[2:], regionID)
	return k
}

// EntryKey returns the key of the raft log entry at index in regionID's log.
func EntryKey(regionID, index uint64) []byte {
	k := append(regionRaftPrefix(regionID), raftLogSuffix)
	return binary.BigEndian.AppendUint64(k, index)
}

// RaftStateKey returns the key of regionID's RaftLocalState.
func RaftStateKey(regionID uint64) []byte {
	return append(regionRaftPrefix(regionID), raftStateSuffix)
}

// ApplyStateKey returns the key of regionID's RaftApplyState.
func ApplyStateKey(regionID uint64) []byte {
	return append(regionRaftPrefix(regionID), applyStateSuffix)
}

// RegionStateKey returns the key of regionID's RegionLocalState.
func RegionStateKey(regionID uint64) []byte {
	k := make([]byte, 2, regionPrefixLen)
	k[0], k[1] = LocalPrefix, regionStatePrefix
	return binary.BigEndian.AppendUint64(k, regionID)
}

// StoreIdentKey returns the key of the store's raftkvpb.StoreIdent.
func StoreIdentKey() []byte { return []byte{LocalPrefix, storeIdentPrefix} }

// entryIndex returns the index encoded in a raft log entry key of
// regionID, or an error if key is not one.
func entryIndex(regionID uint64, key []byte) (uint64, error) {
	if len(key) != entryKeyLen || key[0] != LocalPrefix || key[1] != raftPrefix ||
		binary.BigEndian.Uint64(key[2:]) != regionID || key[regionPrefixLen] != raftLogSuffix {
		return 0, fmt.Errorf("key %x is not a raft log key of region %d", key, regionID)
	}
	return binary.BigEndian.Uint64(key[regionPrefixLen+1:]), nil
}

// DataKey returns the engine key under which user key userKey is stored:
// DataPrefix followed by userKey, in a new slice.
func DataKey(userKey []byte) []byte {
	k := make([]byte, 1+len(userKey))
	k[0] = DataPrefix
	copy(k[1:], userKey)
	return k
}

// UserKey returns the user key of data key k, aliasing k. ok is false if k
// is not a data key.
func UserKey(k []byte) (userKey []byte, ok bool) {
	if len(k) == 0 || k[0] != DataPrefix {
		return nil, false
	}
	return k[1:], true
}

// DataRange returns the engine key range [lower, upper) holding the data
// of the user key range [start, end). An empty end means "to the end of
// the key space": upper is then DataPrefix+1, the first key after all data
// keys.
func DataRange(start, end []byte) (lower, upper []byte) {
	lower = DataKey(start)
	if len(end) == 0 {
		return lower, []byte{DataPrefix + 1}
	}
	return lower, DataKey(end)
}
