//! Tokenizer and recursive-descent parser for Calico selectors.
//!
//! Grammar (lowest precedence first):
//! ```text
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | primary
//! primary := "(" or ")" | "all" "(" ")" | "has" "(" key ")" | key op
//! op      := "==" str | "!=" str | "in" set | "not" "in" set
//!          | "contains" str | "starts" "with" str | "ends" "with" str
//! set     := "{" [str ("," str)*] "}"
//! ```

use super::{Expr, SelectorError, SelectorErrorKind};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Bang,
    And,
    Or,
    Eq,
    Ne,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Bang => "`!`".into(),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::Eq => "`==`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::End => "end of selector".into(),
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// Splits `text` into tokens with their byte offsets; ends with `Tok::End`.
fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, (usize, SelectorErrorKind)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        if c.is_whitespace() {
            at += c.len_utf8();
            continue;
        }
        let (tok, len) = next_token(text, at, c)?;
        out.push((at, tok));
        at += len;
    }
    out.push((text.len(), Tok::End));
    Ok(out)
}

/// The token starting at byte `at` (whose first character is `c`) and its
/// length in bytes.
fn next_token(text: &str, at: usize, c: char) -> Result<(Tok, usize), (usize, SelectorErrorKind)> {
    let rest = &text[at..];
    let operators = [
        ("&&", Tok::And),
        ("||", Tok::Or),
        ("==", Tok::Eq),
        ("!=", Tok::Ne),
    ];
    for (op, tok) in operators {
        if rest.starts_with(op) {
            return Ok((tok, op.len()));
        }
    }
    let single = match c {
        '(' => Some(Tok::LParen),
        ')' => Some(Tok::RParen),
        '{' => Some(Tok::LBrace),
        '}' => Some(Tok::RBrace),
        ',' => Some(Tok::Comma),
        '!' => Some(Tok::Bang),
        _ => None,
    };
    if let Some(tok) = single {
        return Ok((tok, 1));
    }
    if c == '"' || c == '\'' {
        let end = rest[1..]
            .find(c)
            .ok_or((at, SelectorErrorKind::UnterminatedString))?;
        return Ok((Tok::Str(rest[1..1 + end].to_owned()), end + 2));
    }
    if is_ident_char(c) {
        let len = rest.find(|ch| !is_ident_char(ch)).unwrap_or(rest.len());
        return Ok((Tok::Ident(rest[..len].to_owned()), len));
    }
    Err((at, SelectorErrorKind::UnexpectedChar(c)))
}

/// A comparison operator.
#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
}

/// Most nested `!`/parentheses a selector may have.
const MAX_DEPTH: usize = 64;
/// Most `&&`/`||` operators a selector may have.
const MAX_OPERATORS: usize = 1024;

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(usize, Tok)>,
    pos: usize,
    /// Current nesting of `!` and parentheses.
    depth: usize,
    /// `&&`/`||` operators seen so far.
    operators: usize,
}

/// Parses a whole selector; blank text is `all()`.
pub(super) fn parse(text: &str) -> Result<Expr, SelectorError> {
    let toks = tokenize(text).map_err(|(at, kind)| error_at(text, at, kind))?;
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        depth: 0,
        operators: 0,
    };
    if p.peek() == &Tok::End {
        return Ok(Expr::All);
    }
    let expr = p.or()?;
    p.expect(&Tok::End, "`&&`, `||` or end of selector")?;
    Ok(expr)
}

fn error_at(text: &str, byte: usize, kind: SelectorErrorKind) -> SelectorError {
    SelectorError {
        position: text[..byte].chars().count() + 1,
        kind,
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].1
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len() - 1);
        &self.toks[i].1
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].1.clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        let (at, tok) = &self.toks[self.pos];
        error_at(
            self.text,
            *at,
            SelectorErrorKind::Unexpected {
                expected,
                found: tok.describe(),
            },
        )
    }

    fn expect(&mut self, tok: &Tok, expected: &'static str) -> Result<(), SelectorError> {
        if self.peek() == tok {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_word(&mut self, word: &str, expected: &'static str) -> Result<(), SelectorError> {
        match self.peek() {
            Tok::Ident(w) if w == word => {
                self.next();
                Ok(())
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.and()?;
        while self.peek() == &Tok::Or {
            self.operators += 1;
            let too_many = self.operators > MAX_OPERATORS;
            self.limit(too_many, SelectorErrorKind::TooLong(MAX_OPERATORS))?;
            self.next();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.unary()?;
        while self.peek() == &Tok::And {
            self.operators += 1;
            let too_many = self.operators > MAX_OPERATORS;
            self.limit(too_many, SelectorErrorKind::TooLong(MAX_OPERATORS))?;
            self.next();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Bounds the expression tree so that evaluating, printing and
    /// dropping it cannot exhaust the stack.
    fn limit(&self, exceeded: bool, kind: SelectorErrorKind) -> Result<(), SelectorError> {
        if exceeded {
            return Err(error_at(self.text, self.toks[self.pos].0, kind));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        self.depth += 1;
        self.limit(
            self.depth > MAX_DEPTH,
            SelectorErrorKind::TooDeep(MAX_DEPTH),
        )?;
        let e = if self.peek() == &Tok::Bang {
            self.next();
            self.unary().map(|e| Expr::Not(Box::new(e)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        e
    }

    fn primary(&mut self) -> Result<Expr, SelectorError> {
        const START: &str = "a label name, `all()`, `has(`, `!` or `(`";
        match self.peek().clone() {
            Tok::LParen => {
                self.next();
                let e = self.or()?;
                self.expect(&Tok::RParen, "`&&`, `||` or `)`")?;
                Ok(e)
            }
            Tok::Ident(w) if w == "all" && self.peek_at(1) == &Tok::LParen => {
                self.next();
                self.next();
                self.expect(&Tok::RParen, "`)` after `all(`")?;
                Ok(Expr::All)
            }
            Tok::Ident(w) if w == "has" && self.peek_at(1) == &Tok::LParen => {
                self.next();
                self.next();
                let key = self.key()?;
                self.expect(&Tok::RParen, "`)` after the label name")?;
                Ok(Expr::Has(key))
            }
            Tok::Ident(_) => {
                let key = self.key()?;
                self.comparison(key)
            }
            _ => Err(self.unexpected(START)),
        }
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.peek().clone() {
            Tok::Ident(k) => {
                self.next();
                Ok(k)
            }
            _ => Err(self.unexpected("a label name")),
        }
    }

    fn comparison(&mut self, key: String) -> Result<Expr, SelectorError> {
        Ok(match self.operator()? {
            Op::Eq => Expr::Eq(key, self.string()?),
            Op::Ne => Expr::Ne(key, self.string()?),
            Op::In => Expr::In(key, self.set()?),
            Op::NotIn => Expr::NotIn(key, self.set()?),
            Op::Contains => Expr::Contains(key, self.string()?),
            Op::StartsWith => Expr::StartsWith(key, self.string()?),
            Op::EndsWith => Expr::EndsWith(key, self.string()?),
        })
    }

    /// Reads the operator after a label name. Like Calico's tokenizer it
    /// also accepts the two-word operators written without the space.
    fn operator(&mut self) -> Result<Op, SelectorError> {
        const OPS: &str = "`==`, `!=`, `in`, `not in`, `contains`, `starts with` or `ends with`";
        let word = match self.peek() {
            Tok::Eq => "==".to_owned(),
            Tok::Ne => "!=".to_owned(),
            Tok::Ident(w) => w.clone(),
            _ => return Err(self.unexpected(OPS)),
        };
        let (op, second) = match word.as_str() {
            "==" => (Op::Eq, None),
            "!=" => (Op::Ne, None),
            "in" => (Op::In, None),
            "not" => (Op::NotIn, Some(("in", "`in` after `not`"))),
            "notin" => (Op::NotIn, None),
            "contains" => (Op::Contains, None),
            "starts" => (Op::StartsWith, Some(("with", "`with` after `starts`"))),
            "startswith" => (Op::StartsWith, None),
            "ends" => (Op::EndsWith, Some(("with", "`with` after `ends`"))),
            "endswith" => (Op::EndsWith, None),
            _ => return Err(self.unexpected(OPS)),
        };
        self.next();
        if let Some((w, expected)) = second {
            self.expect_word(w, expected)?;
        }
        Ok(op)
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected("a quoted string")),
        }
    }

    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.expect(&Tok::LBrace, "`{`")?;
        let mut values = Vec::new();
        if self.peek() == &Tok::RBrace {
            self.next();
            return Ok(values);
        }
        loop {
            values.push(self.string()?);
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RBrace => {
                    self.next();
                    return Ok(values);
                }
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }
}
