//! The `#[transform]` attribute of `rmqtt-kafka-transform`. Use it through that crate
//! (`rmqtt_kafka_transform::transform`), whose documentation describes it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    parse_macro_input, FnArg, GenericArgument, GenericParam, ItemFn, Lifetime, Path, PathArguments,
    ReturnType, Token, Type, TypePath,
};

/// Turns `fn name(msg: &Message[, cfg: &Config]) -> Outcome | Result<Outcome, E>` into the
/// transform of a WebAssembly module. See `rmqtt_kafka_transform::transform`.
#[proc_macro_attribute]
pub fn transform(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as Args);
    let func = parse_macro_input!(item as ItemFn);
    expand(args, func).into()
}

/// `#[transform]` or `#[transform(init = path)]`.
struct Args {
    init: Option<Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut init = None;
        while !input.is_empty() {
            let name: syn::Ident = input.parse()?;
            if name != "init" {
                return Err(syn::Error::new(
                    name.span(),
                    format!("unknown #[transform] argument `{name}`; the only argument is `init = path::to::fn`"),
                ));
            }
            if init.is_some() {
                return Err(syn::Error::new(name.span(), "`init` is given twice"));
            }
            input.parse::<Token![=]>()?;
            init = Some(input.parse::<Path>()?);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(Args { init })
    }
}

const SHAPES: &str = "expected `fn name(msg: &Message) -> Outcome` or `fn name(msg: &Message, cfg: &Config) -> Result<Outcome, Error>`";

/// The adapter between the user's function and the `rmqtt_transform` export.
const TRANSFORM_ADAPTER: &str = "__rmqtt_transform";
/// The adapter between the user's init function and the `rmqtt_transform_init` export.
const INIT_ADAPTER: &str = "__rmqtt_init";

/// The names the expansion defines: the exports (spelled by the ABI crate, so they match
/// what the host looks up) and the adapters. The user's function cannot take one of them.
const RESERVED: [&str; 6] = [
    abi::EXPORT_ABI_MARKER,
    abi::EXPORT_RESERVE,
    abi::EXPORT_INIT,
    abi::EXPORT_TRANSFORM,
    TRANSFORM_ADAPTER,
    INIT_ADAPTER,
];

/// The lifetime the macro gives every elided lifetime of the signature: one call's, for the
/// message, the config or state, and the records, which all live until the host has read
/// the output. The borrow checker names it in its errors ("`'call` must outlive
/// `'static`", "lifetime `'call` defined here" under `#[transform]`), so it says what it is.
const LIFETIME: &str = "'call";

fn expand(args: Args, mut func: ItemFn) -> TokenStream2 {
    let checked = validate(&func.sig, args.init.is_some());
    // Also on error, so that the function compiles and the only error is ours: as
    // written, or with the `'static`s we refuse replaced by what the macro makes of them.
    if checked.is_err() {
        replace_statics(&mut func.sig);
    }
    name_elided_lifetimes(&mut func.sig);
    if let Err(err) = checked {
        let mut tokens = err.to_compile_error();
        tokens.extend(func.into_token_stream());
        return tokens;
    }

    let name = &func.sig.ident;
    let arity = func.sig.inputs.len();
    let krate = quote!(::rmqtt_kafka_transform);
    let transform_adapter = format_ident!("{}", TRANSFORM_ADAPTER);
    let init_adapter = format_ident!("{}", INIT_ADAPTER);
    let ret_span = match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => Span::call_site(),
    };

    // The second argument is the config, or the state the init function made of it.
    let state = state_type(&func.sig);
    let (second, init_body) = match (&state, &args.init) {
        (Some(ty), Some(path)) => (
            quote!(state.downcast_ref::<#ty>().expect("the state is the init function's")),
            quote_spanned! {path.span()=>
                #krate::__private::keep_state::<#ty, _>(#path(cfg))
            },
        ),
        (_, Some(path)) => (
            quote!(cfg),
            quote_spanned! {path.span()=>
                #krate::__private::IntoInitResult::into_init_result(#path(cfg))?;
                ::core::result::Result::Ok(::core::option::Option::None)
            },
        ),
        (_, None) => (quote!(cfg), quote!()),
    };
    let call = if arity == 1 {
        quote!(#name(msg))
    } else {
        quote!(#name(msg, #second))
    };
    let convert = quote_spanned! {ret_span=>
        let result = #call;
        #krate::__private::IntoResult::into_result(result)
    };
    let (init_fn, init_arg) = match &args.init {
        Some(_) => (
            quote! {
                fn #init_adapter(cfg: &#krate::Config) -> #krate::__private::InitResult {
                    #init_body
                }
            },
            quote!(::core::option::Option::Some(#init_adapter as #krate::__private::InitFn)),
        ),
        None => (quote!(), quote!(::core::option::Option::None)),
    };
    let exports = exports(&krate, &transform_adapter, &init_arg);

    quote! {
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        #func

        // The exports of ABI v1 (docs/abi.md). The adapters are type-checked on every
        // target, so a native `cargo test` catches what a wasm build would reject.
        #[allow(dead_code, unsafe_code, non_snake_case)]
        const _: () = {
            fn #transform_adapter<'m>(
                msg: &'m #krate::Message<'m>,
                cfg: &'m #krate::Config,
                state: &'m dyn ::core::any::Any,
            ) -> ::core::result::Result<#krate::Outcome<'m>, #krate::Error> {
                let _ = (&cfg, &state);
                #convert
            }

            #init_fn

            #exports
        };
    }
}

/// The `#[no_mangle]` functions of ABI v1, named by the ABI crate so that they are the
/// names the host looks up. Only wasm32 builds export them.
fn exports(
    krate: &TokenStream2,
    transform_adapter: &syn::Ident,
    init_arg: &TokenStream2,
) -> TokenStream2 {
    let marker = format_ident!("{}", abi::EXPORT_ABI_MARKER);
    let reserve = format_ident!("{}", abi::EXPORT_RESERVE);
    let init = format_ident!("{}", abi::EXPORT_INIT);
    let transform = format_ident!("{}", abi::EXPORT_TRANSFORM);
    quote! {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn #marker() {}

        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn #reserve(len: i32) -> i32 {
            #krate::__private::reserve(len)
        }

        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn #init(ptr: i32, len: i32) -> i64 {
            #krate::__private::init(ptr, len, #init_arg)
        }

        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn #transform(ptr: i32, len: i32) -> i64 {
            #krate::__private::transform(ptr, len, #transform_adapter)
        }
    }
}

fn validate(sig: &syn::Signature, has_init: bool) -> syn::Result<()> {
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a #[transform] function cannot be `async`: the host calls it synchronously, once per message",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new(
            unsafety.span(),
            "a #[transform] function cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new_spanned(
            abi,
            "a #[transform] function cannot have an ABI; the macro generates the exports",
        ));
    }
    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, GenericParam::Lifetime(_)))
    {
        return Err(syn::Error::new_spanned(
            param,
            "a #[transform] function cannot be generic: the module exports exactly one concrete function",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        return Err(syn::Error::new_spanned(
            where_clause,
            "a #[transform] function cannot have a `where` clause",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(variadic.span(), SHAPES));
    }
    let arity = sig.inputs.len();
    if arity == 0 || arity > 2 {
        let message = format!("a #[transform] function takes one or two arguments; {SHAPES}");
        return Err(if arity == 0 {
            syn::Error::new(sig.paren_token.span.join(), message)
        } else {
            let extra: Vec<_> = sig.inputs.iter().skip(2).collect();
            syn::Error::new_spanned(quote!(#(#extra),*), message)
        });
    }
    for (i, arg) in sig.inputs.iter().enumerate() {
        let expected = if i == 0 { "Message" } else { "Config" };
        // With an init function, the second argument may be the state it returns.
        let state = i == 1 && has_init && !is_ref_to(arg, "Config");
        if !state {
            check_arg(arg, expected)?;
        } else if let FnArg::Typed(pat) = arg {
            check_state(&pat.ty)?;
        }
    }
    check_return(&sig.output, sig.paren_token.span.join())?;
    check_lifetimes(sig, has_init)?;
    if RESERVED.contains(&sig.ident.to_string().as_str()) {
        return Err(syn::Error::new(
            sig.ident.span(),
            format!(
                "`{}` is the name of a generated export; give the function another name",
                sig.ident
            ),
        ));
    }
    Ok(())
}

/// Rejects the lifetimes the adapter cannot provide, which the borrow checker would
/// otherwise report as "`'call` must outlive `'static`" or as an undeclared lifetime in
/// generated code, without saying what to write. The adapter lends the message, the config
/// and the state for one call, never for `'static`; and the instance keeps the state
/// across calls, so its type cannot borrow for the function's own lifetimes. (`'static`
/// inside the state type or the error type is fine.)
fn check_lifetimes(sig: &syn::Signature, has_init: bool) -> syn::Result<()> {
    let is_static = |l: &&Lifetime| l.ident == "static";
    for (i, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(pat) = arg else { continue };
        let Type::Reference(reference) = &*pat.ty else {
            continue;
        };
        if let Some(lifetime) = reference.lifetime.iter().find(is_static) {
            return Err(static_error(lifetime, sig));
        }
        let inner = lifetimes_in(&reference.elem);
        if i == 1 && has_init && !is_ref_to(arg, "Config") {
            let declared = |l: &&Lifetime| sig.generics.lifetimes().any(|p| p.lifetime == **l);
            if let Some(lifetime) = inner.iter().find(declared) {
                let message = format!(
                    "the state `{}` cannot borrow for `{lifetime}`: the instance keeps what the init function returns across calls, so write `'static` there (and give the state owned fields, `String` rather than `&str`, where it would borrow from the config)",
                    pretty(&reference.elem)
                );
                return Err(syn::Error::new(lifetime.span(), message));
            }
        } else if let Some(lifetime) = inner.iter().find(is_static) {
            return Err(static_error(lifetime, sig));
        }
    }
    let mut output = sig.output.clone();
    let in_outcome = match result_parts(&mut output) {
        (Some(outcome), _) => lifetimes_in(outcome),
        _ => Vec::new(),
    };
    match in_outcome.iter().find(is_static) {
        Some(lifetime) => Err(static_error(lifetime, sig)),
        None => Ok(()),
    }
}

/// Replaces the `'static`s that `check_lifetimes` refuses by `'_` (or the signature's own
/// lifetime), so that after its error the function compiles: the borrow checker would
/// otherwise add its "`'call` must outlive `'static`" to ours.
fn replace_statics(sig: &mut syn::Signature) {
    let to = match sig.generics.lifetimes().next() {
        Some(param) => param.lifetime.clone(),
        None => Lifetime::new("'_", Span::call_site()),
    };
    let mut replace = ReplaceStatic(to);
    for (i, arg) in sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(pat) = arg else { continue };
        let Type::Reference(reference) = &mut *pat.ty else {
            continue;
        };
        if let Some(lifetime) = &mut reference.lifetime {
            replace.visit_lifetime_mut(lifetime);
        }
        if i == 0 {
            replace.visit_type_mut(&mut reference.elem);
        }
    }
    if let (Some(outcome), _) = result_parts(&mut sig.output) {
        replace.visit_type_mut(outcome);
    }
}

/// Replaces every `'static` it visits by its lifetime.
struct ReplaceStatic(Lifetime);

impl VisitMut for ReplaceStatic {
    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "static" {
            *lifetime = self.0.clone();
        }
    }
}

/// The error for a `'static` in the signature, with the two ways that work, the second
/// spelled with the function's own names so that it can be pasted.
fn static_error(lifetime: &Lifetime, sig: &syn::Signature) -> syn::Error {
    let message = format!(
        "a #[transform] function cannot take or return `'static` borrows: the message, the config or state, and the records live for one call. \
         Leave the lifetimes out, and the macro gives them all one lifetime, `{LIFETIME}`, so that records may borrow from each; or name it yourself: `{}`",
        explicit_form(sig)
    );
    syn::Error::new(lifetime.span(), message)
}

/// `fn name<'a>(msg: &Message<'a>, cfg: &'a Config) -> Result<Outcome<'a>, E>`: the
/// signature with one named lifetime for the message's data, the config or state, and
/// the records (the form the macro makes of elided lifetimes).
fn explicit_form(sig: &syn::Signature) -> String {
    let a = Lifetime::new("'a", Span::call_site());
    let mut args = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(pat) = arg else { continue };
        let ty = match &*pat.ty {
            Type::Reference(r) if i == 0 => format!("&{}", pretty(&with_lifetime(&r.elem, &a))),
            Type::Reference(r) => format!("&{a} {}", pretty(&r.elem)),
            ty => pretty(ty),
        };
        args.push(format!("{}: {ty}", pat.pat.to_token_stream()));
    }
    let mut output = sig.output.clone();
    if let (Some(outcome), _) = result_parts(&mut output) {
        *outcome = with_lifetime(outcome, &a);
    }
    let ret = match &output {
        ReturnType::Type(_, ty) => format!(" -> {}", pretty(ty)),
        ReturnType::Default => String::new(),
    };
    format!("fn {}<{a}>({}){ret}", sig.ident, args.join(", "))
}

/// `Message<'a>` from `Message`, `Message<'_>` or `Message<'static>` (any path).
fn with_lifetime(ty: &Type, lifetime: &Lifetime) -> Type {
    let mut ty = ty.clone();
    if let Type::Path(TypePath { path, .. }) = &mut ty {
        if let Some(last) = path.segments.last_mut() {
            last.arguments = PathArguments::AngleBracketed(syn::parse_quote!(<#lifetime>));
        }
    }
    ty
}

/// The `Outcome` and the error type of a return type `Outcome` or `Result<Outcome, E>`
/// (`Result<Outcome>`, an alias, has no error type).
fn result_parts(output: &mut ReturnType) -> (Option<&mut Type>, Option<&mut Type>) {
    let ReturnType::Type(_, ty) = output else {
        return (None, None);
    };
    let is_result = matches!(&**ty, Type::Path(TypePath { path, .. })
        if path.segments.last().is_some_and(|s| s.ident == "Result"));
    if !is_result {
        return (Some(&mut **ty), None);
    }
    let Type::Path(TypePath { path, .. }) = &mut **ty else {
        return (None, None);
    };
    let Some(last) = path.segments.last_mut() else {
        return (None, None);
    };
    let PathArguments::AngleBracketed(args) = &mut last.arguments else {
        return (None, None);
    };
    let mut types = args.args.iter_mut().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    (types.next(), types.next())
}

/// The lifetimes a type names.
fn lifetimes_in(ty: &Type) -> Vec<Lifetime> {
    struct Named(Vec<Lifetime>);
    impl<'ast> Visit<'ast> for Named {
        fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
            self.0.push(lifetime.clone());
        }
    }
    let mut named = Named(Vec::new());
    named.visit_type(ty);
    named.0
}

/// Names the lifetimes the signature elides, so that the result may borrow from the
/// message's data, the config and the state (plain elision cannot pick between several
/// input lifetimes): `fn f<'l>(msg: &Message<'l>, cfg: &'l Config) -> Outcome<'l>`. The
/// state type is left as written (the instance keeps it across calls, so only `'static`
/// fits, which is what `'_` in it infers to), and an error type's elided lifetimes are
/// `'static` (an error outlives the call: `Err("empty")` with `&str`). Signatures with
/// explicit lifetime parameters are left alone.
fn name_elided_lifetimes(sig: &mut syn::Signature) {
    if sig.generics.lifetimes().next().is_some() {
        return;
    }
    let lifetime = Lifetime::new(LIFETIME, Span::call_site());
    let mut namer = NameElided::new(&lifetime);
    for (i, arg) in sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(pat) = arg else { continue };
        let Type::Reference(reference) = &mut *pat.ty else {
            continue;
        };
        if i == 0 {
            // `&Message<'l>`: records borrow the message's data ('l), not the reference
            // to the `Message` value, which may be a temporary.
            namer.visit_type_mut(&mut reference.elem);
        } else {
            // `&'l Config`, `&'l S`: records may borrow config values and the state.
            namer.name_reference(reference);
        }
    }
    if let (_, Some(error)) = result_parts(&mut sig.output) {
        NameElided::new(&Lifetime::new("'static", Span::call_site())).visit_type_mut(error);
    }
    namer.visit_return_type_mut(&mut sig.output);
    if namer.touched {
        sig.generics
            .params
            .insert(0, GenericParam::Lifetime(syn::LifetimeParam::new(lifetime)));
    }
}

/// The state type `S` when the second argument is `&S` and not `&Config`.
fn state_type(sig: &syn::Signature) -> Option<Type> {
    let arg = sig.inputs.iter().nth(1)?;
    match arg {
        FnArg::Typed(pat) if !is_ref_to(arg, "Config") => match &*pat.ty {
            Type::Reference(r) => Some((*r.elem).clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `arg` is `&Name` (any path ending in that name).
fn is_ref_to(arg: &FnArg, name: &str) -> bool {
    match arg {
        FnArg::Typed(pat) => match &*pat.ty {
            Type::Reference(r) => last_ident(&r.elem).as_deref() == Some(name),
            _ => false,
        },
        FnArg::Receiver(_) => false,
    }
}

/// The state argument: a shared reference, `&S`.
fn check_state(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(r) if r.mutability.is_none() => Ok(()),
        _ => Err(syn::Error::new_spanned(
            ty,
            "the second argument must be `&Config`, or `&S` where `S` is what the init function returns",
        )),
    }
}

/// `&Message` / `&Config` (any path ending in that name, with or without lifetimes).
fn check_arg(arg: &FnArg, expected: &str) -> syn::Result<()> {
    let what = if expected == "Message" {
        "first"
    } else {
        "second"
    };
    let ty = match arg {
        FnArg::Receiver(r) => {
            return Err(syn::Error::new(
                r.span(),
                "a #[transform] function cannot take `self`; it must be a free function",
            ))
        }
        FnArg::Typed(pat) => &*pat.ty,
    };
    let Type::Reference(reference) = ty else {
        return Err(syn::Error::new_spanned(
            ty,
            format!(
                "the {what} argument must be a shared reference: `&{expected}`, not `{}`",
                pretty(ty)
            ),
        ));
    };
    if let Some(mutability) = &reference.mutability {
        return Err(syn::Error::new(
            mutability.span(),
            format!("the {what} argument must be a shared reference `&{expected}`, not `&mut {expected}`"),
        ));
    }
    if last_ident(&reference.elem).as_deref() != Some(expected) {
        return Err(syn::Error::new_spanned(
            &reference.elem,
            format!("the {what} argument must be `&{expected}`; {SHAPES}"),
        ));
    }
    Ok(())
}

/// Checks for `Outcome` or `Result<Outcome, _>` (any paths ending in those names).
fn check_return(output: &ReturnType, fallback: Span) -> syn::Result<()> {
    let ty = match output {
        ReturnType::Default => {
            return Err(syn::Error::new(
                fallback,
                "a #[transform] function must return `Outcome` or `Result<Outcome, E>`; add `-> Outcome`",
            ))
        }
        ReturnType::Type(_, ty) => &**ty,
    };
    let error = || {
        syn::Error::new_spanned(
            ty,
            format!(
                "a #[transform] function must return `Outcome` or `Result<Outcome, E>`, not `{}`",
                pretty(ty)
            ),
        )
    };
    let Type::Path(TypePath { qself: None, path }) = ty else {
        return Err(error());
    };
    let last = path.segments.last().ok_or_else(error)?;
    match last.ident.to_string().as_str() {
        "Outcome" => Ok(()),
        "Result" => {
            let PathArguments::AngleBracketed(args) = &last.arguments else {
                return Err(error());
            };
            match args.args.first() {
                Some(GenericArgument::Type(ok)) if last_ident(ok).as_deref() == Some("Outcome") => {
                    Ok(())
                }
                _ => Err(error()),
            }
        }
        _ => Err(error()),
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(TypePath { qself: None, path }) => {
            path.segments.last().map(|s| s.ident.to_string())
        }
        Type::Group(g) => last_ident(&g.elem),
        Type::Paren(p) => last_ident(&p.elem),
        _ => None,
    }
}

/// Replaces elided lifetimes (`&T`, `'_`, and a missing `<'a>` on `Message`, `Outcome`,
/// `Record`)
/// with one named lifetime.
struct NameElided {
    lifetime: Lifetime,
    touched: bool,
}

impl NameElided {
    fn new(lifetime: &Lifetime) -> NameElided {
        NameElided {
            lifetime: lifetime.clone(),
            touched: false,
        }
    }

    /// Names the lifetime of `&T` or `&'_ T`, and nothing inside `T`.
    fn name_reference(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.as_ref().is_none_or(|l| l.ident == "_") {
            r.lifetime = Some(self.lifetime.clone());
            self.touched = true;
        }
    }
}

impl VisitMut for NameElided {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        self.name_reference(r);
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut Lifetime) {
        if l.ident == "_" {
            *l = self.lifetime.clone();
            self.touched = true;
        }
    }

    fn visit_path_segment_mut(&mut self, seg: &mut syn::PathSegment) {
        let named = ["Message", "Outcome", "Record"]
            .iter()
            .any(|n| seg.ident == n);
        if named && seg.arguments.is_none() {
            let lifetime = &self.lifetime;
            seg.arguments = PathArguments::AngleBracketed(syn::parse_quote!(<#lifetime>));
            self.touched = true;
        }
        syn::visit_mut::visit_path_segment_mut(self, seg);
    }
}

/// `Result<Record, Error>` rather than `Result < Record , Error >`.
fn pretty(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        text = text.replace(from, to);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(sig: &str) -> String {
        let mut sig: syn::Signature = syn::parse_str(sig).unwrap();
        name_elided_lifetimes(&mut sig);
        sig.to_token_stream().to_string().replace(' ', "")
    }

    #[test]
    fn elided_lifetimes_get_one_name() {
        assert_eq!(
            named("fn f(msg: &Message) -> Outcome"),
            "fnf<'call>(msg:&Message<'call>)->Outcome<'call>"
        );
        assert_eq!(
            named("fn f(msg: &Message<'_>, cfg: &Config) -> Result<Outcome, Error>"),
            "fnf<'call>(msg:&Message<'call>,cfg:&'callConfig)->Result<Outcome<'call>,Error>"
        );
        assert_eq!(
            named("fn f(msg: &x::Message, _: &x::Config) -> std::result::Result<x::Outcome, &str>"),
            "fnf<'call>(msg:&x::Message<'call>,_:&'callx::Config)->std::result::Result<x::Outcome<'call>,&'staticstr>"
        );
    }

    #[test]
    fn the_state_type_is_left_as_written() {
        assert_eq!(
            named("fn f(msg: &Message, s: &Settings<'_>) -> Outcome"),
            "fnf<'call>(msg:&Message<'call>,s:&'callSettings<'_>)->Outcome<'call>"
        );
    }

    #[test]
    fn explicit_lifetimes_are_left_alone() {
        let sig = "fn f<'a>(msg: &Message<'a>, cfg: &Config) -> Outcome<'a>";
        assert_eq!(named(sig), sig.replace(' ', ""));
    }

    #[test]
    fn signatures_are_validated() {
        let check =
            |sig: &str| validate(&syn::parse_str(sig).unwrap(), false).map_err(|e| e.to_string());
        assert!(check("fn f(msg: &Message) -> Outcome").is_ok());
        assert!(check(
            "fn f(m: &rmqtt_kafka_transform::Message, c: &Config) -> Result<Outcome, String>"
        )
        .is_ok());
        assert!(check("fn f(msg: &Message) -> Result<Outcome>").is_ok());
        let err = check("fn f(msg: &Config) -> Outcome").unwrap_err();
        assert!(
            err.starts_with("the first argument must be `&Message`"),
            "{err}"
        );
        let err = check("fn f(msg: &Message, cfg: Config) -> Outcome").unwrap_err();
        assert!(
            err.starts_with("the second argument must be a shared reference"),
            "{err}"
        );
        let err = check("fn f(msg: &Message) -> Option<Outcome>").unwrap_err();
        assert_eq!(err, "a #[transform] function must return `Outcome` or `Result<Outcome, E>`, not `Option<Outcome>`");
        let err = check("fn f(msg: &Message, s: &Settings) -> Outcome").unwrap_err();
        assert!(
            err.starts_with("the second argument must be `&Config`"),
            "{err}"
        );
    }

    #[test]
    fn with_init_the_second_argument_may_be_its_state() {
        let check =
            |sig: &str| validate(&syn::parse_str(sig).unwrap(), true).map_err(|e| e.to_string());
        assert!(check("fn f(msg: &Message, s: &Settings) -> Outcome").is_ok());
        assert!(check("fn f(msg: &Message, cfg: &Config) -> Outcome").is_ok());
        let err = check("fn f(msg: &Message, s: &mut Settings) -> Outcome").unwrap_err();
        assert!(
            err.starts_with("the second argument must be `&Config`, or `&S`"),
            "{err}"
        );
        let sig = syn::parse_str("fn f(msg: &Message, s: &Settings) -> Outcome").unwrap();
        let state = state_type(&sig).map(|t| t.to_token_stream().to_string());
        assert_eq!(state.as_deref(), Some("Settings"));
    }

    #[test]
    fn static_borrows_are_refused_with_the_explicit_form() {
        let check =
            |sig: &str| validate(&syn::parse_str(sig).unwrap(), true).map_err(|e| e.to_string());
        let explicit = "fn f<'a>(msg: &Message<'a>, s: &'a Settings) -> Result<Outcome<'a>, Error>";
        for sig in [
            "fn f(msg: &Message, s: &Settings) -> Result<Outcome<'static>, Error>",
            "fn f(msg: &Message<'static>, s: &Settings) -> Result<Outcome, Error>",
            "fn f(msg: &'static Message, s: &'static Settings) -> Result<Outcome, Error>",
        ] {
            let err = check(sig).unwrap_err();
            assert!(
                err.contains("cannot take or return `'static` borrows"),
                "{err}"
            );
            assert!(err.ends_with(&format!("`{explicit}`")), "{err}");
        }
        assert!(check(explicit).is_ok());
        assert!(check(
            "fn f(msg: &Message, s: &Settings<'static>) -> Result<Outcome, &'static str>"
        )
        .is_ok());
        let err =
            check("fn f<'a>(msg: &Message<'a>, s: &'a Settings<'a>) -> Outcome<'a>").unwrap_err();
        assert!(
            err.starts_with("the state `Settings<'a>` cannot borrow for `'a`"),
            "{err}"
        );
    }

    #[test]
    fn refused_statics_become_the_macros_lifetime() {
        let mut sig = syn::parse_str(
            "fn f(msg: &Message<'static>, s: &'static S<'static>) -> Outcome<'static>",
        )
        .unwrap();
        replace_statics(&mut sig);
        name_elided_lifetimes(&mut sig);
        let sig = sig.to_token_stream().to_string().replace(' ', "");
        assert_eq!(
            sig,
            "fnf<'call>(msg:&Message<'call>,s:&'callS<'static>)->Outcome<'call>"
        );
    }

    #[test]
    fn exports_carry_the_abi_names() {
        let func = syn::parse_str("fn t(msg: &Message) -> Outcome { Outcome::Drop }").unwrap();
        let expansion = expand(Args { init: None }, func).to_string();
        for name in [
            abi::EXPORT_ABI_MARKER,
            abi::EXPORT_RESERVE,
            abi::EXPORT_INIT,
            abi::EXPORT_TRANSFORM,
        ] {
            let export = format!("# [unsafe (no_mangle)] pub extern \"C\" fn {name} (");
            assert!(expansion.contains(&export), "{name} missing: {expansion}");
            let sig = syn::parse_str(&format!("fn {name}(m: &Message) -> Outcome")).unwrap();
            let err = validate(&sig, false).unwrap_err();
            assert!(
                err.to_string()
                    .contains("is the name of a generated export"),
                "{err}"
            );
        }
    }

    #[test]
    fn arguments_parse() {
        let args: Args = syn::parse_str("init = checks::config").unwrap();
        assert_eq!(
            args.init.unwrap().to_token_stream().to_string(),
            "checks :: config"
        );
        assert!(syn::parse_str::<Args>("").unwrap().init.is_none());
        assert!(syn::parse_str::<Args>("init = a, init = b").is_err());
    }
}
