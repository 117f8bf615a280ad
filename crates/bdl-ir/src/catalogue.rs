//! The catalogue of built-ins: every distribution, function, site function, layer, constraint
//! and `infer` setting that a bdl program can name, with its parameters.
//!
//! Parameter names follow Pyro (`loc`, `scale`, `concentration`, `rate`, `probs`, `logits`, …).
//! A parameter may have alternatives (`probs | logits`): exactly one of them is given, and a
//! positional argument fills the first. Checking (name resolution, arity, parameter names) and
//! lowering both read this table, so adding a built-in starts here. The runtime describes the
//! same distributions in `bdl_dist::FAMILIES`; this crate may not depend on that one, so
//! `crates/bdl-runtime/tests/catalogue_agreement.rs` proves that the two tables agree.

/// What values a parameter accepts, as far as a literal argument can be checked statically.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Any tensor.
    Any,
    /// Strictly positive values (`scale`, `rate`, `concentration`, `df`).
    Positive,
    /// Values in [0, 1] (`probs`).
    Probability,
    /// Integers ≥ 0 (`total_count`).
    Count,
    /// A positive integer given as a literal (a matrix dimension).
    Size,
    /// A string literal (a site name).
    SiteName,
    /// A distribution.
    Distribution,
    /// A network declared with `network`.
    Network,
    /// A constraint such as `positive`.
    Constraint,
    /// A list of sizes such as `[10]` or `[N, 3]`.
    Shape,
    /// `true` or `false`.
    Bool,
    /// A layer (inside `network` declarations).
    Layer,
}

/// One parameter: its name and alternatives, whether it is required, and its domain.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The accepted names; a positional argument takes the first.
    pub names: &'static [&'static str],
    /// Whether a call must give it.
    pub required: bool,
    /// What values it accepts.
    pub domain: Domain,
}

const fn req(names: &'static [&'static str], domain: Domain) -> Param {
    Param {
        names,
        required: true,
        domain,
    }
}

const fn opt(names: &'static [&'static str], domain: Domain) -> Param {
    Param {
        names,
        required: false,
        domain,
    }
}

/// The set of values a distribution puts mass on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// All reals.
    Real,
    /// (0, ∞).
    Positive,
    /// [0, 1] or (0, 1).
    UnitInterval,
    /// (low, high), given by the parameters `low` and `high`.
    Interval,
    /// {0, 1}.
    Boolean,
    /// {0, 1, 2, …}.
    NonNegativeInteger,
    /// {0, …, total_count}.
    IntegerInterval,
    /// {0, …, K − 1} for K categories.
    Categorical,
    /// Vectors of positive entries summing to one.
    Simplex,
    /// Real vectors.
    RealVector,
    /// Lower-triangular Cholesky factors of correlation matrices.
    CorrCholesky,
    /// Symmetric positive-definite matrices.
    PositiveDefinite,
    /// Whatever value the distribution is given (Delta).
    Value,
    /// The support of the mixed components (MixtureSameFamily), all of one continuous family.
    Mixture,
}

impl Support {
    /// The support's name as Pyro's `constraints` module spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Real => "real",
            Support::Positive => "positive",
            Support::UnitInterval => "unit_interval",
            Support::Interval => "interval(low, high)",
            Support::Boolean => "boolean",
            Support::NonNegativeInteger => "nonnegative_integer",
            Support::IntegerInterval => "integer_interval(0, total_count)",
            Support::Categorical => "integer_interval(0, K - 1)",
            Support::Simplex => "simplex",
            Support::RealVector => "real_vector",
            Support::CorrCholesky => "corr_cholesky",
            Support::PositiveDefinite => "positive_definite",
            Support::Value => "the value of `v`",
            Support::Mixture => "the components' support",
        }
    }

    /// Whether values are integers.
    pub fn is_discrete(self) -> bool {
        matches!(
            self,
            Support::Boolean
                | Support::NonNegativeInteger
                | Support::IntegerInterval
                | Support::Categorical
        )
    }
}

/// How a distribution's batch and event shapes follow from its parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventShape {
    /// Scalar events; the batch shape broadcasts every parameter.
    Scalar,
    /// Scalar integer events; the last axis of `probs`/`logits` lists the categories.
    Categories,
    /// Vector events whose length is the last axis of the first parameter (Dirichlet,
    /// MultivariateNormal).
    Vector,
    /// Square matrix events (LKJCholesky, Wishart).
    Matrix,
}

/// The families whose distributions `MixtureSameFamily` may mix: scalar and continuous, with a
/// support that does not depend on their parameters. `bdl_dist::MIXTURE_COMPONENT_FAMILIES` is
/// the same list (`crates/bdl-runtime/tests/catalogue_agreement.rs` holds them together).
pub const MIXTURE_COMPONENTS: &[&str] = &[
    "Normal",
    "HalfNormal",
    "LogNormal",
    "Exponential",
    "Gamma",
    "InverseGamma",
    "Beta",
    "Cauchy",
    "HalfCauchy",
    "StudentT",
    "Laplace",
    "Logistic",
];

/// A distribution of the catalogue.
#[derive(Debug, PartialEq, Eq)]
pub struct DistributionSpec {
    /// Its name, as in Pyro.
    pub name: &'static str,
    /// Its parameters in positional order.
    pub params: &'static [Param],
    /// Where it puts mass.
    pub support: Support,
    /// How its shapes follow from its parameters.
    pub event: EventShape,
}

use Domain::*;

/// Every distribution of the language.
pub const DISTRIBUTIONS: &[DistributionSpec] = &[
    DistributionSpec {
        name: "Normal",
        params: &[req(&["loc"], Any), req(&["scale"], Positive)],
        support: Support::Real,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "HalfNormal",
        params: &[req(&["scale"], Positive)],
        support: Support::Positive,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "LogNormal",
        params: &[req(&["loc"], Any), req(&["scale"], Positive)],
        support: Support::Positive,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Uniform",
        params: &[req(&["low"], Any), req(&["high"], Any)],
        support: Support::Interval,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Exponential",
        params: &[req(&["rate"], Positive)],
        support: Support::Positive,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Gamma",
        params: &[req(&["concentration"], Positive), req(&["rate"], Positive)],
        support: Support::Positive,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "InverseGamma",
        params: &[req(&["concentration"], Positive), req(&["rate"], Positive)],
        support: Support::Positive,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Beta",
        params: &[
            req(&["concentration1"], Positive),
            req(&["concentration0"], Positive),
        ],
        support: Support::UnitInterval,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Cauchy",
        params: &[req(&["loc"], Any), req(&["scale"], Positive)],
        support: Support::Real,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "HalfCauchy",
        params: &[req(&["scale"], Positive)],
        support: Support::Positive,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "StudentT",
        params: &[
            req(&["df"], Positive),
            opt(&["loc"], Any),
            opt(&["scale"], Positive),
        ],
        support: Support::Real,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Laplace",
        params: &[req(&["loc"], Any), req(&["scale"], Positive)],
        support: Support::Real,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Logistic",
        params: &[req(&["loc"], Any), req(&["scale"], Positive)],
        support: Support::Real,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "TruncatedNormal",
        params: &[
            req(&["loc"], Any),
            req(&["scale"], Positive),
            req(&["low"], Any),
            req(&["high"], Any),
        ],
        support: Support::Interval,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Bernoulli",
        params: &[req(&["probs", "logits"], Probability)],
        support: Support::Boolean,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Binomial",
        params: &[
            req(&["total_count"], Count),
            req(&["probs", "logits"], Probability),
        ],
        support: Support::IntegerInterval,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Categorical",
        params: &[req(&["probs", "logits"], Any)],
        support: Support::Categorical,
        event: EventShape::Categories,
    },
    DistributionSpec {
        name: "Poisson",
        params: &[req(&["rate"], Positive)],
        support: Support::NonNegativeInteger,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "NegativeBinomial",
        params: &[
            req(&["total_count"], Positive),
            req(&["probs", "logits"], Probability),
        ],
        support: Support::NonNegativeInteger,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Dirichlet",
        params: &[req(&["concentration"], Positive)],
        support: Support::Simplex,
        event: EventShape::Vector,
    },
    DistributionSpec {
        name: "MultivariateNormal",
        params: &[
            req(&["loc"], Any),
            req(
                &["covariance_matrix", "precision_matrix", "scale_tril"],
                Any,
            ),
        ],
        support: Support::RealVector,
        event: EventShape::Vector,
    },
    DistributionSpec {
        name: "LKJCholesky",
        params: &[req(&["dim"], Size), opt(&["concentration"], Positive)],
        support: Support::CorrCholesky,
        event: EventShape::Matrix,
    },
    DistributionSpec {
        name: "Wishart",
        params: &[
            req(&["df"], Positive),
            req(
                &["covariance_matrix", "precision_matrix", "scale_tril"],
                Any,
            ),
        ],
        support: Support::PositiveDefinite,
        event: EventShape::Matrix,
    },
    DistributionSpec {
        name: "Delta",
        params: &[req(&["v"], Any), opt(&["log_density"], Any)],
        support: Support::Value,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "Flat",
        params: &[],
        support: Support::Real,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "FlatPositive",
        params: &[],
        support: Support::Positive,
        event: EventShape::Scalar,
    },
    DistributionSpec {
        name: "MixtureSameFamily",
        params: &[
            req(&["weights", "mixture_distribution"], Any),
            req(&["component_distribution"], Distribution),
        ],
        support: Support::Mixture,
        event: EventShape::Scalar,
    },
];

/// How a built-in function's result shape follows from its arguments.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ShapeRule {
    /// The shape of the first argument, real-valued.
    Elementwise,
    /// A reduction over `axis` (all axes when it is not given).
    Reduction,
    /// The shape of the first argument (softmax along an axis).
    SameShape,
    /// Stacks the slices of the first argument on a new `axis`.
    Stack,
    /// Joins the slices of the first argument along an existing `axis`.
    Concat,
    /// The shape given by the second argument.
    Reshape,
    /// The last two axes swapped.
    Transpose,
    /// An integer scalar: the length of the first axis.
    Len,
    /// An integer vector `range(n)` or `range(a, b)`.
    Range,
    /// The broadcast of all the arguments (`where`, and elementwise functions of two arguments).
    Where,
    /// The shape given by the argument (`zeros`, `ones`).
    Filled,
    /// An n × n matrix.
    Eye,
    /// `log_mix(weights, lp1, …)`: the broadcast of the log-densities and of the weights less
    /// their last (component) axis.
    LogMix,
}

/// A built-in function.
#[derive(Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Its name.
    pub name: &'static str,
    /// Its parameters.
    pub params: &'static [Param],
    /// How its result's shape is found.
    pub shape: ShapeRule,
}

const X: Param = req(&["x"], Any);
const AXIS: Param = opt(&["axis"], Any);

const fn elementwise(name: &'static str) -> FunctionSpec {
    FunctionSpec {
        name,
        params: &[X],
        shape: ShapeRule::Elementwise,
    }
}

/// An elementwise function of two arguments, broadcast together.
const fn binary(name: &'static str, params: &'static [Param]) -> FunctionSpec {
    FunctionSpec {
        name,
        params,
        shape: ShapeRule::Where,
    }
}

const XY: &[Param] = &[req(&["x"], Any), req(&["y"], Any)];
const YX: &[Param] = &[req(&["y"], Any), req(&["x"], Any)];

const fn reduction(name: &'static str) -> FunctionSpec {
    FunctionSpec {
        name,
        params: &[X, AXIS],
        shape: ShapeRule::Reduction,
    }
}

/// Every built-in function of the language.
pub const FUNCTIONS: &[FunctionSpec] = &[
    elementwise("exp"),
    elementwise("log"),
    elementwise("log1p"),
    elementwise("expm1"),
    elementwise("sqrt"),
    elementwise("square"),
    elementwise("abs"),
    elementwise("tanh"),
    elementwise("sigmoid"),
    elementwise("relu"),
    elementwise("softplus"),
    elementwise("log_sigmoid"),
    elementwise("lgamma"),
    elementwise("digamma"),
    elementwise("log10"),
    elementwise("log2"),
    elementwise("erf"),
    elementwise("erfc"),
    elementwise("logit"),
    elementwise("inv_logit"),
    elementwise("log_inv_logit"),
    elementwise("log1m_inv_logit"),
    elementwise("cbrt"),
    elementwise("step"),
    binary("pow", XY),
    binary("fmin", XY),
    binary("fmax", XY),
    binary("hypot", XY),
    binary("atan2", YX),
    binary("lbeta", &[req(&["a"], Any), req(&["b"], Any)]),
    binary("lchoose", &[req(&["n"], Any), req(&["k"], Any)]),
    reduction("sum"),
    reduction("mean"),
    reduction("max"),
    reduction("min"),
    reduction("logsumexp"),
    FunctionSpec {
        name: "softmax",
        params: &[X, AXIS],
        shape: ShapeRule::SameShape,
    },
    FunctionSpec {
        name: "log_softmax",
        params: &[X, AXIS],
        shape: ShapeRule::SameShape,
    },
    FunctionSpec {
        name: "stack",
        params: &[req(&["xs"], Any), AXIS],
        shape: ShapeRule::Stack,
    },
    FunctionSpec {
        name: "concat",
        params: &[req(&["xs"], Any), AXIS],
        shape: ShapeRule::Concat,
    },
    FunctionSpec {
        name: "log_mix",
        params: &[
            req(&["weights"], Any),
            req(&["lp1"], Any),
            opt(&["lp2"], Any),
            opt(&["lp3"], Any),
            opt(&["lp4"], Any),
            opt(&["lp5"], Any),
            opt(&["lp6"], Any),
            opt(&["lp7"], Any),
            opt(&["lp8"], Any),
        ],
        shape: ShapeRule::LogMix,
    },
    FunctionSpec {
        name: "reshape",
        params: &[X, req(&["shape"], Shape)],
        shape: ShapeRule::Reshape,
    },
    FunctionSpec {
        name: "transpose",
        params: &[X],
        shape: ShapeRule::Transpose,
    },
    FunctionSpec {
        name: "len",
        params: &[X],
        shape: ShapeRule::Len,
    },
    FunctionSpec {
        name: "range",
        params: &[req(&["start"], Any), opt(&["stop"], Any)],
        shape: ShapeRule::Range,
    },
    FunctionSpec {
        name: "clamp",
        params: &[X, req(&["low"], Any), req(&["high"], Any)],
        shape: ShapeRule::SameShape,
    },
    FunctionSpec {
        name: "where",
        params: &[req(&["condition"], Any), req(&["x"], Any), req(&["y"], Any)],
        shape: ShapeRule::Where,
    },
    FunctionSpec {
        name: "cholesky",
        params: &[X],
        shape: ShapeRule::SameShape,
    },
    FunctionSpec {
        name: "zeros",
        params: &[req(&["shape"], Shape)],
        shape: ShapeRule::Filled,
    },
    FunctionSpec {
        name: "ones",
        params: &[req(&["shape"], Shape)],
        shape: ShapeRule::Filled,
    },
    FunctionSpec {
        name: "eye",
        params: &[req(&["n"], Size)],
        shape: ShapeRule::Eye,
    },
];

/// The functions that create trace sites.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SiteFunction {
    /// `sample(name, dist, shape = [..], constraint = ..)`: a latent random variable.
    Sample,
    /// `observe(name, dist, value)`: conditioning on data.
    Observe,
    /// `param(name, init, constraint)`: a learnable point parameter.
    Param,
    /// `deterministic(name, value)`: a derived value kept in the trace.
    Deterministic,
    /// `lift(name, network, prior)`: every weight of a network as a sample site.
    Lift,
    /// `module(name, network)`: every weight of a network as a param site.
    Module,
    /// `factor(name, log_density)`: a named term added to the log joint density.
    Factor,
}

/// A site function with its parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct SiteFunctionSpec {
    /// Its name.
    pub name: &'static str,
    /// Which one it is.
    pub kind: SiteFunction,
    /// Its parameters.
    pub params: &'static [Param],
}

/// Every site function.
pub const SITE_FUNCTIONS: &[SiteFunctionSpec] = &[
    SiteFunctionSpec {
        name: "sample",
        kind: SiteFunction::Sample,
        params: &[
            req(&["name"], SiteName),
            req(&["dist"], Distribution),
            opt(&["shape"], Shape),
            opt(&["constraint"], Constraint),
        ],
    },
    SiteFunctionSpec {
        name: "observe",
        kind: SiteFunction::Observe,
        params: &[
            req(&["name"], SiteName),
            req(&["dist"], Distribution),
            req(&["value"], Any),
            opt(&["mask"], Any),
        ],
    },
    SiteFunctionSpec {
        name: "param",
        kind: SiteFunction::Param,
        params: &[
            req(&["name"], SiteName),
            req(&["init"], Any),
            opt(&["constraint"], Constraint),
        ],
    },
    SiteFunctionSpec {
        name: "deterministic",
        kind: SiteFunction::Deterministic,
        params: &[req(&["name"], SiteName), req(&["value"], Any)],
    },
    SiteFunctionSpec {
        name: "lift",
        kind: SiteFunction::Lift,
        params: &[
            req(&["name"], SiteName),
            req(&["network"], Network),
            opt(&["prior"], Distribution),
            opt(&["weight"], Distribution),
            opt(&["bias"], Distribution),
            opt(&["fan_in"], Bool),
        ],
    },
    SiteFunctionSpec {
        name: "module",
        kind: SiteFunction::Module,
        params: &[req(&["name"], SiteName), req(&["network"], Network)],
    },
    SiteFunctionSpec {
        name: "factor",
        kind: SiteFunction::Factor,
        params: &[req(&["name"], SiteName), req(&["log_density"], Any)],
    },
];

/// A layer constructor usable in `network` declarations.
#[derive(Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Its name, as in PyTorch.
    pub name: &'static str,
    /// Its parameters.
    pub params: &'static [Param],
    /// Whether it has weights (`Linear`, the convolutions, `Embedding` and the normalisations).
    pub has_weights: bool,
}

/// Every layer.
pub const LAYERS: &[LayerSpec] = &[
    LayerSpec {
        name: "Linear",
        params: &[
            req(&["in_features"], Size),
            req(&["out_features"], Size),
            opt(&["bias"], Bool),
        ],
        has_weights: true,
    },
    LayerSpec {
        name: "Sequential",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "ReLU",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "Tanh",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "Sigmoid",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "Softplus",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "Softmax",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "LogSoftmax",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "LeakyReLU",
        params: &[opt(&["negative_slope"], Any)],
        has_weights: false,
    },
    LayerSpec {
        name: "ELU",
        params: &[opt(&["alpha"], Positive)],
        has_weights: false,
    },
    LayerSpec {
        name: "GELU",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "SiLU",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "Conv1d",
        params: &[
            req(&["in_channels"], Size),
            req(&["out_channels"], Size),
            req(&["kernel_size"], Size),
            opt(&["stride"], Size),
            opt(&["padding"], Count),
            opt(&["bias"], Bool),
        ],
        has_weights: true,
    },
    LayerSpec {
        name: "Conv2d",
        params: &[
            req(&["in_channels"], Size),
            req(&["out_channels"], Size),
            req(&["kernel_size"], Size),
            opt(&["stride"], Size),
            opt(&["padding"], Count),
            opt(&["bias"], Bool),
        ],
        has_weights: true,
    },
    LayerSpec {
        name: "MaxPool1d",
        params: &[req(&["kernel_size"], Size), opt(&["stride"], Size)],
        has_weights: false,
    },
    LayerSpec {
        name: "MaxPool2d",
        params: &[req(&["kernel_size"], Size), opt(&["stride"], Size)],
        has_weights: false,
    },
    LayerSpec {
        name: "AvgPool1d",
        params: &[req(&["kernel_size"], Size), opt(&["stride"], Size)],
        has_weights: false,
    },
    LayerSpec {
        name: "AvgPool2d",
        params: &[req(&["kernel_size"], Size), opt(&["stride"], Size)],
        has_weights: false,
    },
    LayerSpec {
        name: "Flatten",
        params: &[],
        has_weights: false,
    },
    LayerSpec {
        name: "Unflatten",
        params: &[req(&["shape"], Shape)],
        has_weights: false,
    },
    LayerSpec {
        name: "Dropout",
        params: &[opt(&["p"], Probability)],
        has_weights: false,
    },
    LayerSpec {
        name: "Embedding",
        params: &[
            req(&["num_embeddings"], Size),
            req(&["embedding_dim"], Size),
        ],
        has_weights: true,
    },
    LayerSpec {
        name: "LayerNorm",
        params: &[req(&["normalized_shape"], Size)],
        has_weights: true,
    },
    LayerSpec {
        name: "BatchNorm1d",
        params: &[req(&["num_features"], Size)],
        has_weights: true,
    },
    LayerSpec {
        name: "BatchNorm2d",
        params: &[req(&["num_features"], Size)],
        has_weights: true,
    },
    LayerSpec {
        name: "Residual",
        params: &[req(&["layer"], Layer)],
        has_weights: false,
    },
];

/// A constraint for `param` sites.
#[derive(Debug, PartialEq, Eq)]
pub struct ConstraintSpec {
    /// Its name, as in Pyro's `constraints`.
    pub name: &'static str,
    /// Its parameters (`interval(low, high)`); empty for constraints written as a bare name.
    pub params: &'static [Param],
}

/// Every constraint.
pub const CONSTRAINTS: &[ConstraintSpec] = &[
    ConstraintSpec {
        name: "real",
        params: &[],
    },
    ConstraintSpec {
        name: "positive",
        params: &[],
    },
    ConstraintSpec {
        name: "unit_interval",
        params: &[],
    },
    ConstraintSpec {
        name: "interval",
        params: &[req(&["low"], Any), req(&["high"], Any)],
    },
    ConstraintSpec {
        name: "greater_than",
        params: &[req(&["low"], Any)],
    },
    ConstraintSpec {
        name: "less_than",
        params: &[req(&["high"], Any)],
    },
    ConstraintSpec {
        name: "simplex",
        params: &[],
    },
    ConstraintSpec {
        name: "ordered",
        params: &[],
    },
    ConstraintSpec {
        name: "positive_ordered",
        params: &[],
    },
    ConstraintSpec {
        name: "corr_cholesky",
        params: &[],
    },
    ConstraintSpec {
        name: "cov_cholesky",
        params: &[],
    },
];

/// The kind of value an `infer` setting takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SettingKind {
    /// One of the listed bare names.
    Choice(&'static [&'static str]),
    /// An integer ≥ 1.
    PositiveInt,
    /// An integer ≥ 0.
    NonNegativeInt,
    /// A real > 0.
    PositiveReal,
    /// A real in (0, 1).
    Fraction,
    /// A string literal.
    Text,
    /// `true` or `false`.
    Bool,
}

/// An option of `bdlc infer` that an `infer` block may set.
#[derive(Debug, PartialEq, Eq)]
pub struct SettingSpec {
    /// The option's name (the command-line flag without `--`).
    pub name: &'static str,
    /// What it takes.
    pub kind: SettingKind,
}

/// Every setting an `infer` block accepts.
pub const INFER_SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "method",
        kind: SettingKind::Choice(&[
            "svi", "nuts", "hmc", "map", "laplace", "prior", "exact", "ensemble", "sgld", "sghmc",
            "gibbs",
        ]),
    },
    SettingSpec {
        name: "guide",
        kind: SettingKind::Choice(&["diag", "mvn", "lowrank", "delta", "laplace"]),
    },
    SettingSpec {
        name: "elbo",
        kind: SettingKind::Choice(&["trace", "analytic_kl"]),
    },
    SettingSpec {
        name: "optimizer",
        kind: SettingKind::Choice(&["adam", "sgd", "clipped_adam"]),
    },
    SettingSpec {
        name: "steps",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "lr",
        kind: SettingKind::PositiveReal,
    },
    SettingSpec {
        name: "particles",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "chains",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "warmup",
        kind: SettingKind::NonNegativeInt,
    },
    SettingSpec {
        name: "samples",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "seed",
        kind: SettingKind::NonNegativeInt,
    },
    SettingSpec {
        name: "thin",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "max_depth",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "target_accept",
        kind: SettingKind::Fraction,
    },
    SettingSpec {
        name: "step_size",
        kind: SettingKind::PositiveReal,
    },
    SettingSpec {
        name: "kl_weight",
        kind: SettingKind::PositiveReal,
    },
    SettingSpec {
        name: "kl_anneal",
        kind: SettingKind::NonNegativeInt,
    },
    SettingSpec {
        name: "rank",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "members",
        kind: SettingKind::PositiveInt,
    },
    SettingSpec {
        name: "lr_final",
        kind: SettingKind::PositiveReal,
    },
    SettingSpec {
        name: "clip_norm",
        kind: SettingKind::PositiveReal,
    },
    SettingSpec {
        name: "init",
        kind: SettingKind::Choice(&["median", "uniform", "zero"]),
    },
    SettingSpec {
        name: "metric",
        kind: SettingKind::Choice(&["diag", "dense"]),
    },
    SettingSpec {
        name: "swag",
        kind: SettingKind::Bool,
    },
    SettingSpec {
        name: "blocks",
        kind: SettingKind::Text,
    },
];

/// The distribution called `name`.
pub fn distribution(name: &str) -> Option<&'static DistributionSpec> {
    DISTRIBUTIONS.iter().find(|spec| spec.name == name)
}

/// The built-in function called `name`.
pub fn function(name: &str) -> Option<&'static FunctionSpec> {
    FUNCTIONS.iter().find(|spec| spec.name == name)
}

/// The site function called `name`.
pub fn site_function(name: &str) -> Option<&'static SiteFunctionSpec> {
    SITE_FUNCTIONS.iter().find(|spec| spec.name == name)
}

/// The layer called `name`.
pub fn layer(name: &str) -> Option<&'static LayerSpec> {
    LAYERS.iter().find(|spec| spec.name == name)
}

/// The constraint called `name`.
pub fn constraint(name: &str) -> Option<&'static ConstraintSpec> {
    CONSTRAINTS.iter().find(|spec| spec.name == name)
}

/// The `infer` setting called `name`.
pub fn setting(name: &str) -> Option<&'static SettingSpec> {
    INFER_SETTINGS.iter().find(|spec| spec.name == name)
}

/// Every name the catalogue defines, for "did you mean" suggestions.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    DISTRIBUTIONS
        .iter()
        .map(|spec| spec.name)
        .chain(FUNCTIONS.iter().map(|spec| spec.name))
        .chain(SITE_FUNCTIONS.iter().map(|spec| spec.name))
        .chain(LAYERS.iter().map(|spec| spec.name))
        .chain(CONSTRAINTS.iter().map(|spec| spec.name))
}

/// A call signature for messages, e.g. `Bernoulli(probs | logits)` or `sample(name, dist, [shape])`.
pub fn signature(name: &str, params: &[Param]) -> String {
    let params: Vec<String> = params
        .iter()
        .map(|param| {
            let names = param.names.join(" | ");
            if param.required {
                names
            } else {
                format!("[{names}]")
            }
        })
        .collect();
    format!("{name}({})", params.join(", "))
}

/// The families `lift(..., fan_in = true)` can rescale: location–scale families, whose
/// location and scale are both multiplied by the factor.
pub const FAN_IN_FAMILIES: &[&str] = &[
    "Normal",
    "Laplace",
    "Cauchy",
    "StudentT",
    "Logistic",
    "HalfNormal",
    "HalfCauchy",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_across_the_catalogue() {
        let mut names: Vec<&str> = all_names().collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn signatures_show_alternatives_and_optional_parameters() {
        let bernoulli = distribution("Bernoulli").map(|d| signature(d.name, d.params));
        assert_eq!(bernoulli.as_deref(), Some("Bernoulli(probs | logits)"));
        let sample = site_function("sample").map(|s| signature(s.name, s.params));
        assert_eq!(
            sample.as_deref(),
            Some("sample(name, dist, [shape], [constraint])")
        );
    }
}
