// Package tokenuse says which events are a token's mint or use, and hashes
// token ids, for the detectors that keep state per token (token_provenance,
// token_binding): one definition, so they key the same events on the same
// shard.
package tokenuse

import (
	"strings"

	"github.com/haechi-sec/haechi/internal/event"
)

// Key keys successful mints (auth.token, token.issued) and accepted
// gateway uses that carry token.id on the token. It does not allocate.
func Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.Token.ID == "" || ev.Outcome == event.OutcomeFailure {
		return event.EntityKey{}, false
	}
	switch ev.Dataset {
	case event.DatasetGateway:
	case event.DatasetToken:
		if ev.Action != event.ActionTokenIssued {
			return event.EntityKey{}, false
		}
	default:
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID}, true
}

// RefusedPrefix starts the event.action of a request haechi's inline check
// refused at the gateway (docs/verify.md): "verify.never_minted", ….
const RefusedPrefix = "verify."

// ActionUserMismatch is the event.action of a request the inline check
// refused because the token's id was minted for another user than the one
// it was presented for (verdict user_mismatch): a genuine token id reused
// with another subject, i.e. a token that was never minted.
const ActionUserMismatch = RefusedPrefix + "user_mismatch"

// Refused reports whether ev is a request the inline check refused: a
// failed gateway.access event whose action starts with RefusedPrefix,
// carrying token.id. Key does not key it (it is no access); the
// token_provenance detector judges it as a presentation of the token.
func Refused(ev *event.Event) bool {
	return ev.Dataset == event.DatasetGateway && ev.Outcome == event.OutcomeFailure && ev.Token.ID != "" &&
		strings.HasPrefix(ev.Action, RefusedPrefix)
}

// Hash is FNV-1a 64 over a token id: stable across processes and versions
// (unlike hash/maphash), so state keyed by it can be checkpointed.
func Hash(id string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime
	}
	return h
}
