// A bounded pass over YAML text run before the yaml library composes it. The library's
// composer recurses once per nesting level and, fed `[[[[…` 100,000 deep, first overflows
// the stack and then (on a second such request) exhausts the heap; so depth, node count and
// aliases are counted here from the library's lexer, which is a flat state machine, and the
// scan stops at the first bound exceeded.
//
// Block nesting is measured from indentation: each `-`, `?` or `key:` opens a collection at
// its column, and an open collection at a greater column than the current one has ended. A
// sequence written at the same column as its parent mapping's key (`a:\n- x`) counts as one
// level with it, so the estimate may be up to half the true block depth; the parsed value is
// checked exactly afterwards (body-parsers.ts), and the estimate only has to keep the
// composer's recursion small.
import { CST, Lexer } from 'yaml';
import { BodyScanError, type BodyBounds } from './body-scan-error.js';

/** Markers the lexer yields that take no room in the source. */
const ZERO_WIDTH = new Set([CST.DOCUMENT, CST.FLOW_END, CST.SCALAR]);

/** Throws BodyScanError when the text nests too deep, holds too many nodes or too many aliases. */
export function scanYaml(text: string, bounds: BodyBounds): void {
  let offset = 0;
  let column = 0;
  let flowDepth = 0;
  let nodes = 0;
  let aliases = 0;
  /** Columns of the open block collections, innermost last. */
  let blocks: number[] = [];
  /** Column where the current line's node began (a key's column, for the `:` that follows it). */
  let nodeColumn: number | undefined;
  let scalarTextNext = false;

  const fail = (reason: string): never => {
    throw new BodyScanError(reason, offset);
  };
  const checkDepth = (): void => {
    if (blocks.length + flowDepth > bounds.maxDepth) fail(`the body nests deeper than ${bounds.maxDepth} levels`);
  };
  const countNode = (): void => {
    if (++nodes > bounds.maxNodes) fail(`the body holds more than ${bounds.maxNodes} values`);
  };
  const openBlock = (at: number): void => {
    while (blocks.length > 0 && blocks[blocks.length - 1]! > at) blocks.pop();
    if (blocks.length === 0 || blocks[blocks.length - 1]! < at) blocks.push(at);
    checkDepth();
  };
  const beginNode = (): void => {
    nodeColumn ??= column;
  };

  for (const token of new Lexer().lex(text)) {
    if (scalarTextNext) {
      // The source of a plain or block scalar: text, whatever it looks like.
      scalarTextNext = false;
    } else {
      switch (CST.tokenType(token)) {
        case 'scalar':
          countNode();
          beginNode();
          scalarTextNext = true;
          break;
        case 'doc-mode':
        case 'doc-start':
        case 'doc-end':
          blocks = [];
          flowDepth = 0;
          break;
        case 'flow-error-end':
          flowDepth = 0;
          break;
        case 'newline':
          nodeColumn = undefined;
          break;
        case 'seq-item-ind':
        case 'explicit-key-ind':
          countNode();
          if (flowDepth === 0) openBlock(column);
          nodeColumn = undefined;
          break;
        case 'map-value-ind':
          if (flowDepth === 0) openBlock(nodeColumn ?? column);
          nodeColumn = undefined;
          break;
        case 'flow-map-start':
        case 'flow-seq-start':
          countNode();
          beginNode();
          flowDepth++;
          checkDepth();
          break;
        case 'flow-map-end':
        case 'flow-seq-end':
          flowDepth = Math.max(0, flowDepth - 1);
          break;
        case 'alias':
          if (++aliases > bounds.maxAliases) fail(`the body uses more than ${bounds.maxAliases} YAML aliases`);
          countNode();
          beginNode();
          break;
        case 'anchor':
        case 'tag':
        case 'single-quoted-scalar':
        case 'double-quoted-scalar':
          if (!token.startsWith('&') && !token.startsWith('!')) countNode();
          beginNode();
          break;
        default:
          break;
      }
    }
    if (ZERO_WIDTH.has(token)) continue;
    offset += token.length;
    const newline = token.lastIndexOf('\n');
    column = newline >= 0 ? token.length - newline - 1 : column + token.length;
  }
}
