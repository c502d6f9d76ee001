// The argument checks of the JS host, derived from the component's own WIT.
//
// Why this exists: jco lowers JS values into the component without checking them the way the
// WIT means them. A u32 or u64 is wrapped (`-1` becomes 2**64-1, `1.5` becomes 1), a string with
// a lone surrogate is encoded lossily (two different keys become the same U+FFFD key), and a
// value of the wrong type throws from inside the lowering, where the host cannot tell it from a
// trap. So every call into the component goes through `check`: each argument is compared with
// its parameter type in one table, parsed from the WIT that `npm run build` extracts from the
// component itself (`gen/llm-resilience.wit`), and a mismatch throws an `ArgumentError` before
// the component is entered. The instance, and every handle living in it, is untouched.
//
// The parser reads the subset of WIT the component uses (interfaces with records, variants,
// enums, resources, functions, `use`); anything else in a world is skipped.

/** Largest values of the integer types, as bigints. */
const RANGES = {
  u8: [0n, 0xffn],
  u16: [0n, 0xffffn],
  u32: [0n, 0xffff_ffffn],
  u64: [0n, (1n << 64n) - 1n],
  s8: [-0x80n, 0x7fn],
  s16: [-0x8000n, 0x7fffn],
  s32: [-0x8000_0000n, 0x7fff_ffffn],
  s64: [-(1n << 63n), (1n << 63n) - 1n],
};

const PRIMITIVES = new Set([...Object.keys(RANGES), 'f32', 'f64', 'bool', 'char', 'string']);

/**
 * An argument that cannot be passed to the component, found before it was entered: the wrong
 * type, a number out of its WIT type's range or not an integer, a string that is not valid
 * Unicode (a lone surrogate, which has no UTF-8 encoding), a list or record of the wrong shape.
 * `argument` names it (a dotted path into records and lists), `expected` says what it must be,
 * `limit` is the range of an integer type (`null` for other types), and `code` is
 * `invalid-argument` or, for a lone surrogate, `invalid-utf8` (the C ABI's `LLMR_INVALID_UTF8`).
 *
 * Two concrete classes exist so that older `catch` blocks keep working: `ArgumentTypeError` (a
 * `TypeError`: the wrong type) and `ArgumentRangeError` (a `RangeError`: the right type, a value
 * out of range). `err instanceof ArgumentError` is true for both.
 */
export class ArgumentError extends Error {
  static [Symbol.hasInstance](value) {
    if (this !== ArgumentError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return value instanceof ArgumentTypeError || value instanceof ArgumentRangeError;
  }
}

function describe(value) {
  if (value === null) return 'null';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'an array';
  // Strings and objects are not echoed: a misplaced argument can hold a secret.
  return `a${/^[aeiou]/.test(typeof value) ? 'n' : ''} ${typeof value}`;
}

function fill(err, { argument, expected, limit = null, code = 'invalid-argument', value }) {
  err.name = err.constructor.name;
  err.code = code;
  err.argument = argument;
  err.expected = expected;
  err.limit = limit;
  if (value !== undefined) err.found = describe(value);
  return err;
}

/**
 * The wrong type for an argument (an `ArgumentError` and a `TypeError`); for an integer type,
 * also a number that is not a safe integer (fractional, NaN, infinite, beyond 2**53).
 */
export class ArgumentTypeError extends TypeError {
  constructor(details) {
    super(details.message ?? `${details.argument} must be ${details.expected}${details.limit ? ` in ${details.limit}` : ''}, not ${describe(details.value)}`);
    fill(this, details);
  }
}

/** The right type, a value out of range or not valid Unicode (an `ArgumentError` and a `RangeError`). */
export class ArgumentRangeError extends RangeError {
  constructor(details) {
    const found = details.code === 'invalid-utf8' ? 'not a string with a lone surrogate' : `not ${describe(details.value)}`;
    super(details.message ?? `${details.argument} must be ${details.expected}${details.limit ? ` in ${details.limit}` : ''}, ${found}`);
    fill(this, details);
  }
}

const LONE_SURROGATE = /\p{Surrogate}/u;

/** Whether `s` has a UTF-8 encoding (no lone surrogate). */
export function isWellFormed(s) {
  return typeof s.isWellFormed === 'function' ? s.isWellFormed() : !LONE_SURROGATE.test(s);
}

/**
 * `value` as an integer of WIT type `type` (`u32`, `u64`, …): a number for the 8/16/32-bit
 * types, a bigint for the 64-bit ones. Numbers must be safe integers (beyond 2**53 a number is
 * not exact), bigints are taken as they are; anything else, or a value out of the type's range,
 * throws an `ArgumentError` naming `argument` and the range.
 */
export function toInteger(argument, type, value) {
  const [min, max] = RANGES[type];
  const wide = type === 'u64' || type === 's64';
  if (typeof value === 'number' && Number.isSafeInteger(value)) {
    // The hot path: no bigint unless the type wants one.
    if (wide) {
      if (value >= Number(min)) return BigInt(value);
    } else if (value >= Number(min) && value <= Number(max)) return value;
  } else if (typeof value === 'bigint') {
    if (value >= min && value <= max) return wide ? value : Number(value);
  }
  const limit = `${min}..${max}`;
  const expected = wide ? `a ${type} (a safe integer or a bigint)` : `a ${type} (an integer)`;
  // 1.5, NaN, ±Infinity, 2**60 (beyond 2**53 a number is not exact), '8000': not an integer.
  if (typeof value !== 'bigint' && !(typeof value === 'number' && Number.isSafeInteger(value))) {
    throw new ArgumentTypeError({ argument, expected, limit, value });
  }
  throw new ArgumentRangeError({ argument, expected, limit, value });
}

/** `value` as a WIT string: a JS string without lone surrogates. */
export function toString(argument, value) {
  if (typeof value !== 'string') throw new ArgumentTypeError({ argument, expected: 'a string', value });
  if (!isWellFormed(value)) throw new ArgumentRangeError({ argument, expected: 'valid Unicode (UTF-16 without lone surrogates)', code: 'invalid-utf8', value });
  return value;
}

// ---- parsing ------------------------------------------------------------------------------

function tokenize(text) {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
  const tokens = [];
  const re = /\s*(->|%?[A-Za-z_][A-Za-z0-9_-]*|[0-9][0-9A-Za-z.+-]*|[{}()<>,;:=.@/*_])/y;
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < src.length) {
    const at = re.lastIndex;
    m = re.exec(src);
    if (!m) {
      if (/^\s*$/.test(src.slice(at))) break;
      throw new SyntaxError(`WIT: unexpected text at ${at}: ${src.slice(at, at + 20)}`);
    }
    tokens.push(m[1]);
  }
  return tokens;
}

const ident = (t) => (t.startsWith('%') ? t.slice(1) : t);

/** kebab-case → lowerCamelCase, as jco names functions and record fields. */
export const lowerCamel = (name) => name.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
/** kebab-case → UpperCamelCase, as jco names resource classes. */
export const upperCamel = (name) => lowerCamel(name).replace(/^./, (c) => c.toUpperCase());

/**
 * Parses a WIT document into `{ [interface]: { types, funcs, resources } }`: `types` maps a
 * type name to its definition (or to `{ kind: 'use', from, name }`), `funcs` a free function's
 * name to its parameters (`[{ name, type }]`), `resources` a resource name to
 * `{ statics, methods, constructor }`.
 */
export function parseWit(text) {
  const t = tokenize(text);
  let i = 0;
  const peek = () => t[i];
  const next = () => t[i++];
  const expect = (tok) => {
    if (t[i] !== tok) throw new SyntaxError(`WIT: expected ${tok}, found ${t[i]} (token ${i})`);
    i += 1;
  };
  const skipStatement = () => {
    let depth = 0;
    while (i < t.length) {
      const tok = next();
      if (tok === '{') depth += 1;
      else if (tok === '}') {
        depth -= 1;
        if (depth === 0) return;
      } else if (tok === ';' && depth === 0) return;
    }
  };
  const type = () => {
    const name = ident(next());
    if (peek() !== '<') return PRIMITIVES.has(name) ? { kind: name } : { kind: 'named', name };
    expect('<');
    const args = [];
    while (peek() !== '>') {
      args.push(peek() === '_' ? (next(), null) : type());
      if (peek() === ',') next();
    }
    expect('>');
    if (name === 'list') return { kind: 'list', of: args[0] };
    if (name === 'option') return { kind: 'option', of: args[0] };
    if (name === 'result') return { kind: 'result', ok: args[0], err: args[1] ?? null };
    if (name === 'tuple') return { kind: 'tuple', of: args };
    if (name === 'borrow' || name === 'own') return { kind: 'handle', resource: args[0].name };
    throw new SyntaxError(`WIT: unknown generic type ${name}`);
  };
  const params = () => {
    expect('(');
    const out = [];
    while (peek() !== ')') {
      const name = ident(next());
      expect(':');
      out.push({ name, type: type() });
      if (peek() === ',') next();
    }
    expect(')');
    if (peek() === '->') {
      next();
      type();
    }
    return out;
  };
  const funcParams = () => {
    // `func(…)`, `static func(…)`, `async func(…)`.
    while (peek() !== 'func') next();
    next();
    return params();
  };
  const interfaces = {};
  while (i < t.length) {
    const tok = next();
    if (tok !== 'interface') {
      if (tok === 'world' || tok === 'package' || tok === 'use' || tok === 'include') {
        i -= 1;
        skipStatement();
      }
      continue;
    }
    const iface = { types: {}, funcs: {}, resources: {} };
    interfaces[ident(next())] = iface;
    expect('{');
    while (peek() !== '}') {
      const kw = next();
      if (kw === 'use') {
        const from = [];
        while (peek() !== '.' || t[i + 1] !== '{') from.push(next());
        next();
        expect('{');
        const path = from.join('').replace(/@.*$/, '');
        const fromIface = ident(path.split('/').pop());
        while (peek() !== '}') {
          const name = ident(next());
          let alias = name;
          if (peek() === 'as') {
            next();
            alias = ident(next());
          }
          iface.types[alias] = { kind: 'use', from: fromIface, name };
          if (peek() === ',') next();
        }
        expect('}');
        expect(';');
      } else if (kw === 'record' || kw === 'variant' || kw === 'enum' || kw === 'flags') {
        const name = ident(next());
        expect('{');
        const items = [];
        while (peek() !== '}') {
          const item = ident(next());
          let of = null;
          if (kw === 'record') {
            expect(':');
            of = type();
          } else if (kw === 'variant' && peek() === '(') {
            next();
            of = type();
            expect(')');
          }
          items.push({ name: item, type: of });
          if (peek() === ',') next();
        }
        expect('}');
        iface.types[name] = { kind: kw, items };
      } else if (kw === 'type') {
        const name = ident(next());
        expect('=');
        iface.types[name] = type();
        expect(';');
      } else if (kw === 'resource') {
        const name = ident(next());
        const res = { statics: {}, methods: {}, constructor: null };
        iface.resources[name] = res;
        iface.types[name] = { kind: 'resource', name };
        if (peek() === ';') {
          next();
          continue;
        }
        expect('{');
        while (peek() !== '}') {
          const m = next();
          if (m === 'constructor') {
            res.constructor = params();
          } else {
            expect(':');
            const isStatic = peek() === 'static';
            (isStatic ? res.statics : res.methods)[ident(m)] = funcParams();
          }
          expect(';');
        }
        expect('}');
      } else {
        // `name: func(…) -> …;`
        expect(':');
        iface.funcs[ident(kw)] = funcParams();
        expect(';');
      }
    }
    expect('}');
  }
  return interfaces;
}

// ---- checking -----------------------------------------------------------------------------

/**
 * The checks of every exported function of a parsed WIT, keyed by interface name, then by
 * jco's JS name: `free[fn]`, `statics[Class][fn]`, `methods[Class][fn]`, each a function
 * `(args, isResource) => void` that throws an `ArgumentError` for the first bad argument.
 * `isResource(value, iface, resource)` says whether a value is a handle of that resource.
 */
export function checkers(interfaces) {
  const resolve = (ifaceName, t) => {
    let name = ifaceName;
    let ty = t;
    for (let guard = 0; ty.kind === 'named' || ty.kind === 'use'; guard += 1) {
      if (guard > 64) throw new SyntaxError('WIT: type alias cycle');
      if (ty.kind === 'use') {
        name = ty.from;
        ty = interfaces[name]?.types[ty.name];
      } else {
        ty = interfaces[name]?.types[ty.name];
      }
      if (!ty) throw new SyntaxError(`WIT: unknown type in ${name}`);
    }
    return [name, ty];
  };
  const check = (ifaceName, t, value, path, isResource) => {
    const [where, ty] = resolve(ifaceName, t);
    switch (ty.kind) {
      case 'bool':
        if (typeof value !== 'boolean') throw new ArgumentTypeError({ argument: path, expected: 'a boolean', value });
        return;
      case 'f32':
      case 'f64':
        if (typeof value !== 'number') throw new ArgumentTypeError({ argument: path, expected: 'a number', value });
        return;
      case 'char':
        toString(path, value);
        if ([...value].length !== 1) throw new ArgumentRangeError({ argument: path, expected: 'one character', value });
        return;
      case 'string':
        toString(path, value);
        return;
      case 'list':
        if (ty.of?.kind === 'u8' && (ArrayBuffer.isView(value) || value instanceof ArrayBuffer)) return;
        if (!Array.isArray(value)) throw new ArgumentTypeError({ argument: path, expected: 'an array', value });
        for (let k = 0; k < value.length; k += 1) check(where, ty.of, value[k], `${path}[${k}]`, isResource);
        return;
      case 'option':
        if (value === null || value === undefined) return;
        check(where, ty.of, value, path, isResource);
        return;
      case 'tuple':
        if (!Array.isArray(value) || value.length !== ty.of.length) {
          throw new ArgumentTypeError({ argument: path, expected: `an array of ${ty.of.length}`, value });
        }
        ty.of.forEach((e, k) => check(where, e, value[k], `${path}[${k}]`, isResource));
        return;
      case 'record':
        if (value === null || typeof value !== 'object') throw new ArgumentTypeError({ argument: path, expected: 'an object', value });
        for (const f of ty.items) check(where, f.type, value[lowerCamel(f.name)], `${path}.${lowerCamel(f.name)}`, isResource);
        return;
      case 'enum':
        if (typeof value !== 'string' || !ty.items.some((c) => c.name === value)) {
          throw new ArgumentRangeError({ argument: path, expected: `one of ${ty.items.map((c) => c.name).join(', ')}`, value });
        }
        return;
      case 'variant': {
        const c = value !== null && typeof value === 'object' ? ty.items.find((x) => x.name === value.tag) : undefined;
        if (!c) throw new ArgumentTypeError({ argument: path, expected: `{ tag, val } with tag ${ty.items.map((x) => x.name).join(', ')}`, value });
        if (c.type) check(where, c.type, value.val, `${path}.val`, isResource);
        return;
      }
      case 'flags':
        if (value === null || typeof value !== 'object') throw new ArgumentTypeError({ argument: path, expected: 'an object of flags', value });
        return;
      case 'handle':
      case 'resource': {
        const resName = ty.kind === 'handle' ? ty.resource : ty.name;
        const [owner] = resolve(where, { kind: 'named', name: resName });
        if (!isResource(value, owner, resName)) {
          throw new ArgumentTypeError({ argument: path, expected: `a ${resName} handle`, value });
        }
        return;
      }
      case 'result':
        throw new SyntaxError('WIT: a result parameter is not supported');
      default:
        if (RANGES[ty.kind]) {
          const wide = ty.kind === 'u64' || ty.kind === 's64';
          // Exactly what jco lowers without changing it: a bigint for 64-bit types (jco takes a
          // safe number too), a number for the others.
          toInteger(path, ty.kind, value);
          if (!wide && typeof value !== 'number') throw new ArgumentTypeError({ argument: path, expected: `a ${ty.kind} (a number)`, value });
          return;
        }
        throw new SyntaxError(`WIT: unknown type ${ty.kind}`);
    }
  };
  // The fast path: one compiled predicate `(value, isResource) => boolean` per type, no strings
  // built, types resolved once. Only when it says no does the slow `check` run again, to name
  // the argument.
  const compiled = new Map();
  const fast = (ifaceName, t) => {
    const [where, ty] = resolve(ifaceName, t);
    if (compiled.has(ty)) return compiled.get(ty);
    let f;
    const range = RANGES[ty.kind];
    const later = (type) => {
      let g;
      return (v, r) => (g ??= fast(where, type))(v, r);
    };
    switch (ty.kind) {
      case 'bool':
        f = (v) => typeof v === 'boolean';
        break;
      case 'f32':
      case 'f64':
        f = (v) => typeof v === 'number';
        break;
      case 'string':
        f = (v) => typeof v === 'string' && isWellFormed(v);
        break;
      case 'char':
        f = (v) => typeof v === 'string' && isWellFormed(v) && [...v].length === 1;
        break;
      case 'u8':
      case 'u16':
      case 'u32':
      case 's8':
      case 's16':
      case 's32': {
        const [min, max] = [Number(range[0]), Number(range[1])];
        f = (v) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
        break;
      }
      case 'u64':
      case 's64':
        f = (v) => (typeof v === 'bigint' ? v >= range[0] && v <= range[1] : Number.isSafeInteger(v) && v >= Number(range[0]));
        break;
      case 'list': {
        if (ty.of?.kind === 'u8') {
          f = (v) => ArrayBuffer.isView(v) || v instanceof ArrayBuffer || (Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0 && x <= 255));
          break;
        }
        const item = later(ty.of);
        f = (v, r) => {
          if (!Array.isArray(v)) return false;
          for (let k = 0; k < v.length; k += 1) if (!item(v[k], r)) return false;
          return true;
        };
        break;
      }
      case 'option': {
        const inner = later(ty.of);
        f = (v, r) => v === null || v === undefined || inner(v, r);
        break;
      }
      case 'tuple': {
        const items = ty.of.map(later);
        f = (v, r) => Array.isArray(v) && v.length === items.length && items.every((g, k) => g(v[k], r));
        break;
      }
      case 'record': {
        const names = ty.items.map((x) => lowerCamel(x.name));
        const fields = ty.items.map((x) => later(x.type));
        f = (v, r) => {
          if (v === null || typeof v !== 'object') return false;
          for (let k = 0; k < names.length; k += 1) if (!fields[k](v[names[k]], r)) return false;
          return true;
        };
        break;
      }
      case 'enum': {
        const cases = new Set(ty.items.map((c) => c.name));
        f = (v) => cases.has(v);
        break;
      }
      case 'variant': {
        const cases = new Map(ty.items.map((c) => [c.name, c.type ? later(c.type) : null]));
        f = (v, r) => {
          if (v === null || typeof v !== 'object' || !cases.has(v.tag)) return false;
          const payload = cases.get(v.tag);
          return payload === null || payload(v.val, r);
        };
        break;
      }
      case 'handle':
      case 'resource': {
        const resName = ty.kind === 'handle' ? ty.resource : ty.name;
        const [owner] = resolve(where, { kind: 'named', name: resName });
        f = (v, r) => r(v, owner, resName);
        break;
      }
      default:
        // Flags (and anything new): the slow path every time.
        f = () => false;
    }
    compiled.set(ty, f);
    return f;
  };
  const fn = (ifaceName, ps, label) => {
    let preds = null;
    return (args, isResource) => {
      preds ??= ps.map((p) => fast(ifaceName, p.type));
      let ok = true;
      for (let k = 0; k < preds.length && ok; k += 1) ok = preds[k](args[k], isResource);
      if (ok) return;
      slow(args, isResource);
    };
    function slow(args, isResource) {
      try {
        ps.forEach((p, k) => check(ifaceName, p.type, args[k], lowerCamel(p.name), isResource));
      } catch (err) {
        if (err instanceof ArgumentError) {
          err.function = label;
          err.message = `${label}: ${err.message}`;
        }
        throw err;
      }
    }
  };
  const out = {};
  for (const [ifaceName, iface] of Object.entries(interfaces)) {
    const entry = { free: {}, statics: {}, methods: {} };
    for (const [name, ps] of Object.entries(iface.funcs)) entry.free[lowerCamel(name)] = fn(ifaceName, ps, lowerCamel(name));
    for (const [resName, res] of Object.entries(iface.resources)) {
      const cls = upperCamel(resName);
      entry.statics[cls] = {};
      entry.methods[cls] = {};
      for (const [name, ps] of Object.entries(res.statics)) entry.statics[cls][lowerCamel(name)] = fn(ifaceName, ps, `${cls}.${lowerCamel(name)}`);
      for (const [name, ps] of Object.entries(res.methods)) entry.methods[cls][lowerCamel(name)] = fn(ifaceName, ps, `${cls}.${lowerCamel(name)}`);
    }
    out[ifaceName] = entry;
  }
  return out;
}
