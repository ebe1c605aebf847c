// Draws the charts of `sipguard scan --format html` from the JSON the page embeds.
(function(){
var d=JSON.parse(document.getElementById("report-data").textContent);
var P=["#3b82f6","#ef4444","#f59e0b","#10b981","#8b5cf6","#ec4899","#14b8a6","#6b7280"];
function lbl(m){return new Date(m*60000).toISOString().slice(0,16).replace("T"," ")}
var o={animation:false,responsive:true,maintainAspectRatio:false};
new Chart(document.getElementById("c-timeline"),{type:"bar",data:{labels:d.minutes.map(lbl),
datasets:Object.keys(d.kinds).map(function(k,i){return{label:k,data:d.kinds[k],backgroundColor:P[i%P.length]}})},
options:Object.assign({scales:{x:{stacked:true},y:{stacked:true,beginAtZero:true}}},o)});
new Chart(document.getElementById("c-top"),{type:"bar",data:{labels:d.top.map(function(x){return x[0]}),
datasets:[{label:"events",data:d.top.map(function(x){return x[1]}),backgroundColor:"#ef4444"}]},
options:Object.assign({indexAxis:"y",plugins:{legend:{display:false}}},o)});
new Chart(document.getElementById("c-countries"),{type:"bar",data:{labels:d.countries.map(function(x){return x[0]}),
datasets:[{label:"sources",data:d.countries.map(function(x){return x[1]}),backgroundColor:"#3b82f6"}]},
options:Object.assign({plugins:{legend:{display:false}}},o)});
document.body.dataset.drawn="1";
})();
