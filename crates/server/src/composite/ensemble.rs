//! `kind = "ensemble"`: a DAG of steps, each a model of the repository whose inputs and outputs
//! are mapped to the ensemble's named tensors, and built-in combiners over those tensors
//! (`mean`, `sum`, `min`, `max` element-wise; `vote`, the majority of integer labels). The
//! ensemble's inputs are the tensors some step or combiner reads and none produces; its
//! outputs are the ones `outputs` names. Steps whose inputs are ready run concurrently
//! ([`Ensemble::run`], given how to run one target).
//!
//! ```toml
//! kind = "ensemble"
//! outputs = ["probabilities"]
//! [[step]]
//! model = "forest"
//! inputs = { input = "features" }        # the step's input <- an ensemble tensor
//! outputs = { probabilities = "p_forest" } # the step's output -> an ensemble tensor
//! [[step]]
//! model = "boosted@stable"
//! inputs = { input = "features" }
//! outputs = { probabilities = "p_boosted" }
//! [[combine]]
//! op = "mean"
//! inputs = ["p_forest", "p_boosted"]
//! output = "probabilities"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferroserve_core::{DataType, Signature, Tensor, TensorData, TensorSpec};

use super::Target;
use crate::error::InferError;
use crate::inference::{Answered, InferRequest, InferResponse, RequestContext};

pub(crate) use ferroserve_loader::config::{CombineOp, CombineSpec, EnsembleSpec, StepSpec};

/// A checked ensemble: its steps in an order where every input comes first.
#[derive(Debug)]
pub struct Ensemble {
    /// The steps, each with its target, in dependency order.
    pub steps: Vec<(Target, StepSpec)>,
    /// The combiners, in dependency order with the steps: combiner `i` runs once every
    /// tensor it reads exists.
    pub combines: Vec<CombineSpec>,
    /// The ensemble's inputs and outputs.
    pub signature: Signature,
}

impl Ensemble {
    /// Checks `spec` against the signatures of its steps' models (`signature_of` gives the
    /// signature of a target, or why it is not available) and orders it.
    pub fn plan(
        spec: &EnsembleSpec,
        mut signature_of: impl FnMut(&Target) -> Result<Signature, String>,
    ) -> Result<Ensemble, String> {
        if spec.step.is_empty() {
            return Err("an ensemble needs at least one [[step]]".into());
        }
        // Every tensor produced, with its spec and producer.
        let mut produced: BTreeMap<String, TensorSpec> = BTreeMap::new();
        fn produce(
            produced: &mut BTreeMap<String, TensorSpec>,
            name: &str,
            spec: TensorSpec,
            by: &str,
        ) -> Result<(), String> {
            if produced.insert(name.to_owned(), spec).is_some() {
                return Err(format!("tensor '{name}' is produced twice (again by {by})"));
            }
            Ok(())
        }
        let mut steps = Vec::new();
        let mut consumed: BTreeMap<String, TensorSpec> = BTreeMap::new();
        for (ix, step) in spec.step.iter().enumerate() {
            let at = format!("step {} ({})", ix + 1, step.model);
            let target = Target::parse(&step.model)?;
            let signature = signature_of(&target).map_err(|e| format!("{at}: {e}"))?;
            for input in &signature.inputs {
                let Some(tensor) = step.inputs.get(&input.name) else {
                    return Err(format!(
                        "{at}: the model's input '{}' is not mapped (inputs = {{ {} = \"<tensor>\" }})",
                        input.name, input.name
                    ));
                };
                consumed.entry(tensor.clone()).or_insert_with(|| {
                    TensorSpec::new(tensor.clone(), input.datatype, input.shape.clone())
                });
            }
            for name in step.inputs.keys() {
                if signature.inputs.iter().all(|i| &i.name != name) {
                    return Err(format!(
                        "{at}: the model has no input '{name}' (it has {:?})",
                        signature.inputs.iter().map(|i| &i.name).collect::<Vec<_>>()
                    ));
                }
            }
            for (name, tensor) in &step.outputs {
                let Some(out) = signature.outputs.iter().find(|o| &o.name == name) else {
                    return Err(format!(
                        "{at}: the model has no output '{name}' (it has {:?})",
                        signature
                            .outputs
                            .iter()
                            .map(|o| &o.name)
                            .collect::<Vec<_>>()
                    ));
                };
                produce(
                    &mut produced,
                    tensor,
                    TensorSpec::new(tensor.clone(), out.datatype, out.shape.clone()),
                    &at,
                )?;
            }
            steps.push((target, step.clone()));
        }
        for c in &spec.combine {
            let at = format!("combine '{}'", c.output);
            if c.inputs.len() < 2 {
                return Err(format!("{at}: combines at least two tensors"));
            }
            let first = c.inputs[0].as_str();
            let Some(model) = produced.get(first).cloned() else {
                return Err(format!(
                    "{at}: tensor '{first}' is not produced by any step"
                ));
            };
            for name in &c.inputs {
                let Some(other) = produced.get(name) else {
                    return Err(format!(
                        "{at}: tensor '{name}' is not produced by any step or earlier combine"
                    ));
                };
                if other.datatype != model.datatype {
                    return Err(format!(
                        "{at}: '{name}' is {} but '{first}' is {}",
                        other.datatype, model.datatype
                    ));
                }
            }
            let numeric_ok = match c.op {
                CombineOp::Vote => is_integer(model.datatype),
                CombineOp::Mean => is_float(model.datatype),
                _ => is_float(model.datatype) || is_integer(model.datatype),
            };
            if !numeric_ok {
                return Err(format!(
                    "{at}: {:?} does not apply to {} tensors",
                    c.op, model.datatype
                ));
            }
            produce(
                &mut produced,
                &c.output,
                TensorSpec::new(c.output.clone(), model.datatype, model.shape.clone()),
                &at,
            )?;
        }
        // The ensemble's inputs: read but never produced. A step reading what a later step
        // produces is ordered after it below; a cycle is an error.
        let inputs: Vec<TensorSpec> = consumed
            .iter()
            .filter(|(name, _)| !produced.contains_key(*name))
            .map(|(_, spec)| spec.clone())
            .collect();
        if inputs.is_empty() {
            return Err(
                "the ensemble takes no inputs: every tensor a step reads is produced by a step"
                    .into(),
            );
        }
        let outputs = spec
            .outputs
            .iter()
            .map(|name| {
                produced.get(name).cloned().ok_or_else(|| {
                    format!("output '{name}' is not produced by any step or combine")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if outputs.is_empty() {
            return Err("outputs: name at least one tensor to return".into());
        }
        let steps = order(steps, &inputs, &spec.combine)?;
        Ok(Ensemble {
            steps,
            combines: spec.combine.clone(),
            signature: Signature { inputs, outputs },
        })
    }
}

/// The steps in an order where each reads only ensemble inputs, earlier steps' outputs, or
/// combiner outputs whose inputs come from earlier steps.
fn order(
    mut pending: Vec<(Target, StepSpec)>,
    inputs: &[TensorSpec],
    combines: &[CombineSpec],
) -> Result<Vec<(Target, StepSpec)>, String> {
    let mut available: BTreeSet<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut ordered = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, s)| s.inputs.values().all(|t| available.contains(t)));
        let Some(ix) = ready else {
            let names: Vec<&str> = pending.iter().map(|(_, s)| s.model.as_str()).collect();
            return Err(format!(
                "steps {names:?} wait on each other: the graph has a cycle"
            ));
        };
        let step = pending.remove(ix);
        available.extend(step.1.outputs.values().cloned());
        loop {
            let before = available.len();
            for c in combines {
                if c.inputs.iter().all(|i| available.contains(i)) {
                    available.insert(c.output.clone());
                }
            }
            if available.len() == before {
                break;
            }
        }
        ordered.push(step);
    }
    Ok(ordered)
}

fn is_float(d: DataType) -> bool {
    matches!(d, DataType::Fp32 | DataType::Fp64)
}

fn is_integer(d: DataType) -> bool {
    matches!(
        d,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Uint8
            | DataType::Uint16
            | DataType::Uint32
            | DataType::Uint64
    )
}

impl Ensemble {
    /// Walks the graph for `request`: each step once its inputs exist (the steps ready
    /// together run concurrently, through `step`, which runs one target), the combiners as
    /// soon as theirs do, then the outputs asked for. `name` is the ensemble's, for errors.
    pub(crate) async fn run<F, Fut>(
        &self,
        name: &str,
        request: InferRequest,
        started: Instant,
        step: F,
    ) -> Result<Answered, InferError>
    where
        F: Fn(Target, InferRequest) -> Fut,
        Fut: Future<Output = Result<InferResponse, InferError>>,
    {
        let broken = |message: String| InferError::Composite {
            model: name.to_owned(),
            message,
        };
        let selection = request.output_indices(&self.signature)?;
        let InferRequest {
            id,
            inputs,
            priority,
            timeout,
            context,
            ..
        } = request;
        let inputs = self.signature.validate_inputs(inputs, usize::MAX)?;
        let compute_input = started.elapsed();
        let mut tensors: BTreeMap<String, Tensor> =
            inputs.into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut pending: Vec<&(Target, StepSpec)> = self.steps.iter().collect();
        let mut combined = vec![false; self.combines.len()];
        let infer_started = Instant::now();
        while !pending.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|(_, s)| s.inputs.values().all(|t| tensors.contains_key(t)));
            pending = waiting;
            if ready.is_empty() {
                return Err(broken("a step waits on a tensor no step produced".into()));
            }
            let runs = ready.iter().map(|(target, spec)| {
                let step_inputs = spec
                    .inputs
                    .iter()
                    .map(|(name, tensor)| {
                        let mut t = tensors[tensor].clone();
                        t.name.clone_from(name);
                        t
                    })
                    .collect();
                let step_request = InferRequest {
                    id: id.clone(),
                    inputs: step_inputs,
                    outputs: Vec::new(),
                    priority,
                    timeout,
                    context: RequestContext {
                        parameters: context.parameters.clone(),
                        headers: Vec::new(),
                    },
                };
                step(target.clone(), step_request)
            });
            for ((_, spec), answer) in ready.iter().zip(futures::future::join_all(runs).await) {
                // The step's own error: it names the model (and its status is the step's).
                for mut t in answer?.outputs {
                    if let Some(tensor) = spec.outputs.get(&t.name) {
                        t.name.clone_from(tensor);
                        tensors.insert(tensor.clone(), t);
                    }
                }
            }
            // Combiners whose inputs now exist, in order (one may read another's output).
            for (ix, c) in self.combines.iter().enumerate() {
                if !combined[ix] && c.inputs.iter().all(|i| tensors.contains_key(i)) {
                    let parts: Vec<&Tensor> = c.inputs.iter().map(|i| &tensors[i]).collect();
                    let out = combine(c.op, &c.output, &parts).map_err(|message| {
                        InferError::Execution {
                            model: name.to_owned(),
                            source: ferroserve_core::ModelError::Execution { message },
                        }
                    })?;
                    tensors.insert(c.output.clone(), out);
                    combined[ix] = true;
                }
            }
        }
        let infer = infer_started.elapsed();
        let outputs = selection
            .into_iter()
            .map(|ix| {
                let name = &self.signature.outputs[ix].name;
                tensors
                    .remove(name)
                    .ok_or_else(|| broken(format!("no step produced its output '{name}'")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Answered {
            response: InferResponse {
                id,
                outputs,
                parameters: serde_json::Map::new(),
            },
            compute_input,
            queue: Duration::ZERO,
            infer,
        })
    }
}

/// Applies a combiner to tensors of one shape and datatype (checked at load; checked again
/// here, since a step's answer may have another batch size than its peers').
pub(crate) fn combine(op: CombineOp, name: &str, parts: &[&Tensor]) -> Result<Tensor, String> {
    let first = parts[0];
    if let Some(other) = parts.iter().find(|p| p.shape != first.shape) {
        return Err(format!(
            "combine '{name}': '{}' has shape {:?} but '{}' has {:?}",
            other.name, other.shape, first.name, first.shape
        ));
    }
    // Each part's elements, all of one datatype.
    macro_rules! columns {
        ($v:ident) => {
            parts
                .iter()
                .map(|p| match p.data() {
                    TensorData::$v(x) => Ok(x),
                    other => Err(format!(
                        "combine '{name}': '{}' is {}",
                        p.name,
                        other.datatype()
                    )),
                })
                .collect::<Result<_, String>>()?
        };
    }
    macro_rules! floats {
        ($v:ident, $t:ty) => {{
            let cols: Vec<&Vec<$t>> = columns!($v);
            let n = cols.len() as $t;
            let out: Vec<$t> = (0..cols[0].len())
                .map(|i| {
                    let it = cols.iter().map(|c| c[i]);
                    match op {
                        CombineOp::Mean => it.sum::<$t>() / n,
                        CombineOp::Sum => it.sum::<$t>(),
                        CombineOp::Min => it.fold(<$t>::INFINITY, <$t>::min),
                        CombineOp::Max => it.fold(<$t>::NEG_INFINITY, <$t>::max),
                        CombineOp::Vote => unreachable!("vote is for integers (checked at load)"),
                    }
                })
                .collect();
            TensorData::$v(out)
        }};
    }
    macro_rules! ints {
        ($v:ident, $t:ty) => {{
            let cols: Vec<&Vec<$t>> = columns!($v);
            let out =
                (0..cols[0].len())
                    .map(|i| {
                        let it = cols.iter().map(|c| c[i]);
                        match op {
                            CombineOp::Sum => it.fold(0 as $t, |a: $t, b| a.wrapping_add(b)),
                            CombineOp::Min => it.min().unwrap_or_default(),
                            CombineOp::Max => it.max().unwrap_or_default(),
                            CombineOp::Vote | CombineOp::Mean => {
                                let mut votes: BTreeMap<_, usize> = BTreeMap::new();
                                for v in it {
                                    *votes.entry(v).or_default() += 1;
                                }
                                // The most votes; among equals the smallest label (BTreeMap order).
                                votes
                                    .iter()
                                    .fold((<$t>::default(), 0), |best, (&v, &c)| {
                                        if c > best.1 { (v, c) } else { best }
                                    })
                                    .0
                            }
                        }
                    })
                    .collect();
            TensorData::$v(out)
        }};
    }
    let data = match first.data() {
        TensorData::F32(_) => floats!(F32, f32),
        TensorData::F64(_) => floats!(F64, f64),
        TensorData::I8(_) => ints!(I8, i8),
        TensorData::I16(_) => ints!(I16, i16),
        TensorData::I32(_) => ints!(I32, i32),
        TensorData::I64(_) => ints!(I64, i64),
        TensorData::U8(_) => ints!(U8, u8),
        TensorData::U16(_) => ints!(U16, u16),
        TensorData::U32(_) => ints!(U32, u32),
        TensorData::U64(_) => ints!(U64, u64),
        other => {
            return Err(format!(
                "combine '{name}': {} tensors cannot be combined",
                other.datatype()
            ));
        }
    };
    Tensor::new(name, first.shape.clone(), data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(inputs: &[(&str, DataType)], outputs: &[(&str, DataType)]) -> Signature {
        Signature {
            inputs: inputs
                .iter()
                .map(|(n, d)| TensorSpec::new(*n, *d, vec![-1, 4]))
                .collect(),
            outputs: outputs
                .iter()
                .map(|(n, d)| TensorSpec::new(*n, *d, vec![-1, 3]))
                .collect(),
        }
    }

    fn signatures(t: &Target) -> Result<Signature, String> {
        match t.model.as_str() {
            "scale" => Ok(sig(&[("x", DataType::Fp32)], &[("y", DataType::Fp32)])),
            "a" | "b" => Ok(sig(
                &[("input", DataType::Fp32)],
                &[("p", DataType::Fp32), ("label", DataType::Int64)],
            )),
            other => Err(format!("no model '{other}'")),
        }
    }

    /// An ensemble spec: its `outputs`, then its `[[step]]` and `[[combine]]` tables.
    fn spec(outputs: &[&str], tables: &[String]) -> EnsembleSpec {
        let text = format!("outputs = {outputs:?}\n{}", tables.concat());
        toml::from_str(&text).unwrap()
    }

    /// A `[[step]]`: the model, its inputs and outputs as the inside of TOML inline tables.
    fn step(model: &str, inputs: &str, outputs: &str) -> String {
        format!("[[step]]\nmodel = {model:?}\ninputs = {{ {inputs} }}\noutputs = {{ {outputs} }}\n")
    }

    /// A `[[combine]]`.
    fn combine_table(op: &str, inputs: &[&str], output: &str) -> String {
        format!("[[combine]]\nop = {op:?}\ninputs = {inputs:?}\noutput = {output:?}\n")
    }

    #[test]
    fn a_pipeline_and_an_average_are_ordered_and_typed() {
        // Listed out of order: the plan puts 'scale' first.
        let tables = [
            step("a", r#"input = "scaled""#, r#"p = "pa", label = "la""#),
            step("b@2", r#"input = "scaled""#, r#"p = "pb", label = "lb""#),
            step("scale", r#"x = "raw""#, r#"y = "scaled""#),
            combine_table("mean", &["pa", "pb"], "avg"),
            combine_table("vote", &["la", "lb", "la"], "vote"),
        ];
        let e = Ensemble::plan(&spec(&["avg", "vote"], &tables), signatures).unwrap();
        assert_eq!(e.steps[0].0.model, "scale");
        assert_eq!(
            e.signature.inputs,
            vec![TensorSpec::new("raw", DataType::Fp32, vec![-1, 4])]
        );
        assert_eq!(e.signature.outputs[0].name, "avg");
        assert_eq!(e.signature.outputs[1].datatype, DataType::Int64);
    }

    #[test]
    fn mistakes_are_named() {
        let scale = |inputs: &str, outputs: &str| vec![step("scale", inputs, outputs)];
        let cases = [
            (
                spec(&["y"], &scale(r#"z = "raw""#, r#"y = "y""#)),
                "input 'x' is not mapped",
            ),
            (
                spec(&["y"], &scale(r#"x = "raw""#, r#"q = "y""#)),
                "no output 'q'",
            ),
            (
                spec(&["nope"], &scale(r#"x = "raw""#, r#"y = "y""#)),
                "output 'nope' is not produced",
            ),
            (
                spec(&["y"], &[step("missing", r#"x = "raw""#, r#"y = "y""#)]),
                "no model 'missing'",
            ),
            (
                spec(
                    &["v"],
                    &[
                        step("a", r#"input = "raw""#, r#"p = "pa""#),
                        step("b", r#"input = "raw""#, r#"p = "pb""#),
                        combine_table("vote", &["pa", "pb"], "v"),
                    ],
                ),
                "Vote does not apply to FP32",
            ),
            (
                spec(
                    &["y2"],
                    &[
                        step("scale", r#"x = "y2""#, r#"y = "y1""#),
                        step("scale", r#"x = "y1""#, r#"y = "y2""#),
                    ],
                ),
                "takes no inputs",
            ),
        ];
        for (spec, needle) in cases {
            let error = Ensemble::plan(&spec, signatures).unwrap_err();
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn combiners_compute_element_wise() {
        let t = |n: &str, d: TensorData| Tensor::new(n, vec![1, 3], d).unwrap();
        let a = t("a", TensorData::F32(vec![0.2, 0.4, 0.4]));
        let b = t("b", TensorData::F32(vec![0.6, 0.2, 0.2]));
        let mean = combine(CombineOp::Mean, "m", &[&a, &b]).unwrap();
        assert_eq!(mean.data(), &TensorData::F32(vec![0.4, 0.3, 0.3]));
        let max = combine(CombineOp::Max, "m", &[&a, &b]).unwrap();
        assert_eq!(max.data(), &TensorData::F32(vec![0.6, 0.4, 0.4]));
        let l1 = t("l1", TensorData::I64(vec![1, 2, 0]));
        let l2 = t("l2", TensorData::I64(vec![1, 0, 2]));
        let l3 = t("l3", TensorData::I64(vec![2, 0, 1]));
        let vote = combine(CombineOp::Vote, "v", &[&l1, &l2, &l3]).unwrap();
        // Column 3 is a three-way tie: the smallest label wins.
        assert_eq!(vote.data(), &TensorData::I64(vec![1, 0, 0]));
        let short = Tensor::new("s", vec![1, 2], TensorData::F32(vec![0.0, 1.0])).unwrap();
        assert!(
            combine(CombineOp::Sum, "s", &[&a, &short])
                .unwrap_err()
                .contains("shape")
        );
    }
}
