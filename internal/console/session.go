package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
)

type loginView struct {
	Next  string
	CSRF  string
	Error string
}

// safeNext keeps a post-login redirect on this site: it returns s when s
// is a path on this site ("/…") that no browser could read as another
// origin, and "/" otherwise. Refused: anything not starting with one "/";
// a backslash, space or control character anywhere (browsers drop tabs
// and newlines and read "\" as "/", so "/<tab>/host" and "/\host" are
// "//host"); and a value whose percent-decodings (once, twice, … as long
// as they decode) start with "//" or "/\" or hold a control character.
func safeNext(s string) string {
	if !nextPathOK(s) || strings.ContainsAny(s, "\\ ") {
		return "/"
	}
	d := s
	for i := range 4 {
		if !strings.Contains(d, "%") {
			return s
		}
		u, err := url.PathUnescape(d)
		if err != nil {
			if i == 0 {
				return "/" // no page of ours has a malformed escape
			}
			return s // a literal "%" (an encoded "%25"): d is its last form
		}
		if d = u; !nextPathOK(d) {
			return "/"
		}
	}
	return "/" // still encoded after four rounds: no page has such a path
}

// nextPathOK reports whether p starts with exactly one "/" (not "//" or
// "/\") and holds no control character.
func nextPathOK(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return false
	}
	return !strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.opts.Auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", view{Title: "Log in", Data: loginView{Next: safeNext(r.URL.Query().Get("next")), CSRF: c.opts.Auth.LoginCSRF(w, r)}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.opts.Auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	if !auth.CheckLoginCSRF(r) {
		c.render(w, r, http.StatusForbidden, "login", view{Title: "Log in", Data: loginView{Next: next, CSRF: c.opts.Auth.LoginCSRF(w, r),
			Error: "The login form expired or was posted from another site. Enter the token again."}})
		return
	}
	if _, err := c.opts.Auth.Login(w, r, r.PostFormValue("token")); err != nil {
		code, msg := http.StatusUnauthorized, "That token is not valid (mistyped, or revoked). Tokens start with hch_; create one with: haechi tokens create --role analyst"
		var te *auth.ThrottleError
		switch {
		case errors.As(err, &te):
			secs := int((te.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			code, msg = http.StatusTooManyRequests, fmt.Sprintf("Too many refused logins from your address. Try again in %d seconds.", secs)
		case errors.Is(err, auth.ErrLoginRole):
			code, msg = http.StatusForbidden, loginRoleMessage(err)
		case !errors.Is(err, auth.ErrBadToken):
			code, msg = http.StatusInternalServerError, "Logging in failed: "+err.Error()
		}
		c.render(w, r, code, "login", view{Title: "Log in", Data: loginView{Next: next, CSRF: c.opts.Auth.LoginCSRF(w, r), Error: msg}})
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther) // #nosec G710 -- next passed safeNext: a path on this origin
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if c.opts.Auth != nil {
		c.opts.Auth.Logout(w, r)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// loginRoleMessage says why a token whose role may not use the console
// (err is auth.ErrLoginRole, normally as a *auth.LoginRoleError) was
// refused, naming what that role is for.
func loginRoleMessage(err error) string {
	const then = " Log in with an analyst or admin token."
	var re *auth.LoginRoleError
	if !errors.As(err, &re) {
		return "This token's role may not use the console." + then
	}
	switch re.Role {
	case auth.RoleIngest:
		return "This is an ingest token: it may only post events." + then
	case auth.RoleMint:
		return "This is a mint token: it may only register minted tokens (/v1/tokens/minted), for a token issuer." + then
	case auth.RoleVerify:
		return "This is a verify token: it may only ask the inline token check (/v1/verify), for a gateway." + then
	}
	return "This token's role (" + string(re.Role) + ") may not use the console." + then
}
